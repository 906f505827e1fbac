package introspection

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"hash"
	"log/slog"
	"sync"
	"time"
)

// Bounds on the DPoP server nonces of RFC 9449 §9.
const (
	// minNonceKey is the shortest key, in bytes, that may make or check
	// nonces: the size of an HMAC-SHA256 output.
	minNonceKey = 32
	// defaultNonceLifetime is the lifetime of a nonce when none is set.
	defaultNonceLifetime = 5 * time.Minute
	// minNonceLifetime and maxNonceLifetime bound the lifetime that may be
	// set: slots of half the lifetime are whole seconds, and a nonce
	// that lives longer than a day no longer limits how long a proof made
	// ahead of time stays usable.
	minNonceLifetime = 2 * time.Second
	maxNonceLifetime = 24 * time.Hour
)

// nonceLabel separates the MACs of nonces from any other use of the keys.
const nonceLabel = "introspection DPoP nonce"

// nonceSize is the size of a decoded nonce: the 8-byte slot start and 16
// bytes of MAC. Encoded in base64url, a nonce is nonceLen characters.
const (
	nonceSize = 8 + 16
	nonceLen  = nonceSize / 3 * 4
)

// nonceSource makes and checks the server nonces of RFC 9449 §9 without
// state, so that replicas with the same keys agree without sharing
// anything. Time is cut into slots of half the lifetime, in whole seconds;
// the nonce of a slot is, in base64url without padding, the slot's start in
// Unix seconds (8 bytes, big-endian) followed by the first 16 bytes of
// HMAC-SHA256 under keys[0] of nonceLabel and those 8 bytes. A nonce is
// valid while its MAC checks under any of the keys, so that a new key can
// be put first while nonces made with the old one are still in use, and
// its slot started at most lifetime (plus leeway) ago: a nonce handed out
// by current stays valid for between half the lifetime and the lifetime.
//
// A nonceSource is immutable and safe for concurrent use. It never shows
// its keys: fmt and log/slog print REDACTED in their place.
type nonceSource struct {
	keys     [][]byte     // keys[0] makes nonces; all check them
	macs     []*sync.Pool // of hash.Hash, HMAC-SHA256 under keys[i]
	lifetime time.Duration
	slot     int64 // seconds
}

// newNonceSource returns a source that makes nonces with keys[0] and
// checks them with every key, of which it keeps a copy. lifetime zero
// means 5 minutes. It refuses no keys, a key shorter than 32 bytes, and a
// lifetime under 2 seconds or over 24 hours; its errors never show a key.
func newNonceSource(keys [][]byte, lifetime time.Duration) (*nonceSource, error) {
	if len(keys) == 0 {
		return nil, fmt.Errorf("introspection: DPoP nonces need at least one key")
	}
	own := make([][]byte, len(keys))
	for i, k := range keys {
		if len(k) < minNonceKey {
			return nil, fmt.Errorf("introspection: DPoP nonce key %d is %d bytes; at least %d are needed", i, len(k), minNonceKey)
		}
		own[i] = append([]byte(nil), k...)
	}
	if lifetime == 0 {
		lifetime = defaultNonceLifetime
	}
	if lifetime < minNonceLifetime || lifetime > maxNonceLifetime {
		return nil, fmt.Errorf("introspection: DPoP nonce lifetime %v is outside [%v, %v]", lifetime, minNonceLifetime, maxNonceLifetime)
	}
	n := &nonceSource{keys: own, macs: make([]*sync.Pool, len(own)), lifetime: lifetime, slot: int64(lifetime / 2 / time.Second)}
	for i, k := range own {
		n.macs[i] = &sync.Pool{New: func() any { return hmac.New(sha256.New, k) }}
	}
	return n, nil
}

// current returns the nonce of the slot that now is in: the same string on
// every source with the same first key and lifetime, at any time in the
// slot.
func (n *nonceSource) current(now time.Time) string {
	start := now.Unix() / n.slot * n.slot
	if start > now.Unix() { // division rounds towards zero; before 1970 it must round down
		start -= n.slot
	}
	var b [nonceSize]byte
	binary.BigEndian.PutUint64(b[:8], uint64(start))
	var sum [sha256.Size]byte
	copy(b[8:], n.mac(0, b[:8], sum[:0]))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// valid reports whether nonce is a nonce of this source's keys whose slot
// started no more than the lifetime plus leeway before now, and no more
// than leeway after it. It decodes strictly: exactly nonceLen characters
// of base64url without padding.
func (n *nonceSource) valid(nonce string, now time.Time, leeway time.Duration) bool {
	if len(nonce) != nonceLen {
		return false
	}
	var b [nonceSize]byte
	if m, err := base64.RawURLEncoding.Strict().Decode(b[:], []byte(nonce)); err != nil || m != nonceSize {
		return false
	}
	leeway = max(leeway, 0)
	start := time.Unix(int64(binary.BigEndian.Uint64(b[:8])), 0)
	if start.Before(now.Add(-n.lifetime-leeway)) || start.After(now.Add(leeway)) {
		return false
	}
	ok := false
	var sum [sha256.Size]byte
	for i := range n.keys {
		// Every key is tried, each compared in constant time.
		ok = hmac.Equal(n.mac(i, b[:8], sum[:0]), b[8:]) || ok
	}
	return ok
}

// mac appends to buf the HMAC-SHA256 under keys[i] of nonceLabel and start,
// and returns its first 16 bytes.
func (n *nonceSource) mac(i int, start, buf []byte) []byte {
	h := n.macs[i].Get().(hash.Hash)
	h.Reset()
	h.Write([]byte(nonceLabel))
	h.Write(start)
	buf = h.Sum(buf)
	n.macs[i].Put(h)
	return buf[:nonceSize-8]
}

// Format prints the source with REDACTED for its keys, under every verb.
func (n nonceSource) Format(f fmt.State, _ rune) {
	fmt.Fprintf(f, "introspection.nonceSource{keys:%d %s, lifetime:%v}", len(n.keys), redacted, n.lifetime)
}

// LogValue logs the source with REDACTED for its keys.
func (n nonceSource) LogValue() slog.Value {
	return slog.GroupValue(slog.Int("keys", len(n.keys)), slog.Duration("lifetime", n.lifetime))
}
