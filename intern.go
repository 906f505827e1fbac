package introspection

import (
	"encoding/binary"
	"hash/maphash"
	"slices"
	"strings"
	"sync"
)

// The interner's bounds count a value as the bytes of its text plus
// internOverhead for the value and for each string in a list: about what it
// takes in memory with its string or interface headers and its map slot.
const (
	// maxInternedValue is the largest value that the built-in cache shares
	// between entries; a larger value is kept by each entry that holds it.
	maxInternedValue = 2 << 10
	// maxInternedBytes bounds what the interner holds. When a new value
	// would take it past the bound, the interner starts over: values
	// already shared stay with the entries that hold them and leave with
	// them, so at most this much outlives the entries.
	maxInternedBytes = 64 << 10
	internOverhead   = 32
)

// interner shares equal values between cached answers. Most tokens of a
// deployment have the same issuer, audience and token type, and a few sets
// of scopes, so the built-in cache holds those once.
//
// Values are found by a hash of their type and content and shared only
// after a comparison with the stored value shows them equal, type
// included: a string is never merged with a list, nor two lists that join
// to the same text.
type interner struct {
	mu    sync.Mutex     // guards m and bytes
	seed  maphash.Seed   // never changed
	m     map[uint64]any // a shared string, []any or []string, by hash
	bytes int            // what m holds, counted as the bounds count
}

func newInterner() *interner {
	return &interner{seed: maphash.MakeSeed(), m: make(map[uint64]any)}
}

// Type tags begin the hash of a value, so that values of different types
// hash apart even when their text is the same.
const (
	tagString  = 's'
	tagArray   = 'a' // []any of strings, as decoded from JSON
	tagStrings = 'l' // []string
)

// value returns a shared equal copy of v when v is a string or an array of
// strings, which JSON decoding makes immutable in effect; else v. The
// caller holds in.mu.
func (in *interner) value(v any) any {
	var h maphash.Hash
	h.SetSeed(in.seed)
	switch x := v.(type) {
	case string:
		cost := internOverhead + len(x)
		if cost > maxInternedValue {
			return v
		}
		_ = h.WriteByte(tagString)
		writeString(&h, x)
		sum := h.Sum64()
		shared := in.m[sum]
		if s, ok := shared.(string); ok && s == x {
			return shared // the stored interface: no new allocation
		}
		in.add(sum, v, cost)
		return v
	case []any:
		cost := internOverhead
		_ = h.WriteByte(tagArray)
		writeLen(&h, len(x))
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return v
			}
			if cost += internOverhead + len(s); cost > maxInternedValue {
				return v
			}
			writeString(&h, s)
		}
		sum := h.Sum64()
		shared := in.m[sum]
		if a, ok := shared.([]any); ok && equalArrays(a, x) {
			return shared
		}
		in.add(sum, v, cost)
		return v
	default:
		return v
	}
}

// strings returns a shared equal copy of ss, which no one may change. The
// caller holds in.mu.
func (in *interner) strings(ss []string) []string {
	cost := internOverhead
	var h maphash.Hash
	h.SetSeed(in.seed)
	_ = h.WriteByte(tagStrings)
	writeLen(&h, len(ss))
	for _, s := range ss {
		if cost += internOverhead + len(s); cost > maxInternedValue {
			return ss
		}
		writeString(&h, s)
	}
	sum := h.Sum64()
	if shared, ok := in.m[sum].([]string); ok && slices.Equal(shared, ss) {
		return shared
	}
	if _, taken := in.m[sum]; taken {
		return ss
	}
	// The strings of ss may be pieces of a longer string (strings.Fields
	// of a scope padded with white space): the interner keeps copies, so
	// that it holds only the text it counts.
	own := make([]string, len(ss))
	for i, s := range ss {
		own[i] = strings.Clone(s)
	}
	in.add(sum, own, cost)
	return own
}

// add stores v under sum unless another value has that hash, starting over
// when v would take the interner past maxInternedBytes.
func (in *interner) add(sum uint64, v any, cost int) {
	if _, taken := in.m[sum]; taken {
		return // a different value with the same hash: v stays unshared
	}
	if in.bytes+cost > maxInternedBytes {
		in.m = make(map[uint64]any)
		in.bytes = 0
	}
	in.m[sum] = v
	in.bytes += cost
}

// writeString hashes s with its length before it, so that the hash of a
// list is the hash of one encoding of it and no other.
func writeString(h *maphash.Hash, s string) {
	writeLen(h, len(s))
	_, _ = h.WriteString(s)
}

func writeLen(h *maphash.Hash, n int) {
	var b [binary.MaxVarintLen64]byte
	_, _ = h.Write(b[:binary.PutUvarint(b[:], uint64(n))])
}

func equalArrays(a, b []any) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		s, ok := a[i].(string)
		t, ok2 := b[i].(string)
		if !ok || !ok2 || s != t {
			return false
		}
	}
	return true
}
