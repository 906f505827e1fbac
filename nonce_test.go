package introspection

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// nonceKey returns a key of n bytes, all b.
func nonceKey(b byte, n int) []byte { return bytes.Repeat([]byte{b}, n) }

func mustNonceSource(t *testing.T, lifetime time.Duration, keys ...[]byte) *nonceSource {
	t.Helper()
	n, err := newNonceSource(keys, lifetime)
	require.NoError(t, err)
	return n
}

// nonceEpoch is a time at the start of a slot of every lifetime the tests
// use: a multiple of one hour in Unix seconds.
var nonceEpoch = time.Unix(1_795_000_000-1_795_000_000%3600, 0)

// TestNonceRoundTrip checks that the current nonce is valid when handed
// out, and stays valid for at least half the lifetime wherever in its slot
// it was handed out.
func TestNonceRoundTrip(t *testing.T) {
	n := mustNonceSource(t, time.Minute, nonceKey(1, 32))
	for _, offset := range []time.Duration{0, time.Second, 29 * time.Second, 30*time.Second - time.Nanosecond} {
		now := nonceEpoch.Add(offset)
		nonce := n.current(now)
		assert.Len(t, nonce, 32, "base64url of 24 bytes")
		assert.True(t, n.valid(nonce, now, 0), "at %v", offset)
		assert.True(t, n.valid(nonce, now.Add(30*time.Second), 0), "half the lifetime later, from %v", offset)
	}
	for _, before1970 := range []time.Time{time.Unix(-1, 0), time.Unix(-31, 0), time.Unix(-30, 0)} {
		assert.True(t, n.valid(n.current(before1970), before1970, 0), "slots before 1970 start before now too: %v", before1970)
	}
	assert.Equal(t, n.current(nonceEpoch), n.current(nonceEpoch.Add(30*time.Second-time.Nanosecond)), "one nonce per slot")
	assert.NotEqual(t, n.current(nonceEpoch), n.current(nonceEpoch.Add(30*time.Second)), "the next slot has the next")
}

// TestNonceSameOnReplicas checks that two sources with the same keys (two
// replicas) hand out the same nonce at the same time and accept each
// other's, and that a source with another key accepts neither.
func TestNonceSameOnReplicas(t *testing.T) {
	a := mustNonceSource(t, 0, nonceKey(1, 32))
	b := mustNonceSource(t, 0, nonceKey(1, 32))
	other := mustNonceSource(t, 0, nonceKey(2, 32))
	now := nonceEpoch.Add(17 * time.Second)
	assert.Equal(t, a.current(now), b.current(now))
	assert.True(t, b.valid(a.current(now), now, 0))
	assert.NotEqual(t, a.current(now), other.current(now))
	assert.False(t, other.valid(a.current(now), now, 0))
	assert.False(t, a.valid(other.current(now), now, 0))
}

// TestNonceKeyRotation checks that only the first key makes nonces while
// every key checks them, so a key can be added in front and the old one
// removed a lifetime later.
func TestNonceKeyRotation(t *testing.T) {
	oldKey, newKey := nonceKey(1, 32), nonceKey(2, 48)
	before := mustNonceSource(t, time.Minute, oldKey)
	during := mustNonceSource(t, time.Minute, newKey, oldKey)
	after := mustNonceSource(t, time.Minute, newKey)
	now := nonceEpoch.Add(5 * time.Second)
	old := before.current(now)
	assert.True(t, during.valid(old, now, 0), "the old key still checks")
	assert.NotEqual(t, old, during.current(now), "only the new key makes nonces")
	assert.Equal(t, after.current(now), during.current(now))
	assert.True(t, before.valid(during.current(now), now, 0) == false, "a replica not yet rotated refuses the new key's nonce")
	assert.False(t, after.valid(old, now, 0), "the old key removed")
}

// TestNonceExpiry checks the bound on a nonce's age: its slot may start at
// most lifetime plus leeway before now, at the bound and not just past it.
func TestNonceExpiry(t *testing.T) {
	const lifetime = 5 * time.Minute
	n := mustNonceSource(t, lifetime, nonceKey(1, 32))
	nonce := n.current(nonceEpoch) // the slot starts at nonceEpoch
	for _, leeway := range []time.Duration{0, 10 * time.Second} {
		t.Run(fmt.Sprint(leeway), func(t *testing.T) {
			end := nonceEpoch.Add(lifetime + leeway)
			assert.True(t, n.valid(nonce, end, leeway), "at the bound")
			assert.False(t, n.valid(nonce, end.Add(time.Nanosecond), leeway), "just past the bound")
			assert.False(t, n.valid(nonce, end.Add(time.Hour), leeway), "long past")
		})
	}
}

// TestNonceFromTheFuture checks that a nonce whose slot starts after now
// is refused beyond leeway: a replica's clock may run ahead by that much.
func TestNonceFromTheFuture(t *testing.T) {
	n := mustNonceSource(t, time.Minute, nonceKey(1, 32))
	nonce := n.current(nonceEpoch)
	assert.True(t, n.valid(nonce, nonceEpoch.Add(-5*time.Second), 5*time.Second), "ahead by the leeway")
	assert.False(t, n.valid(nonce, nonceEpoch.Add(-5*time.Second-time.Nanosecond), 5*time.Second), "ahead by more")
	assert.False(t, n.valid(nonce, nonceEpoch.Add(-time.Nanosecond), 0), "ahead without leeway")
	assert.False(t, n.valid(nonce, nonceEpoch.Add(-time.Hour), 5*time.Second))
}

// TestNonceTampered changes each byte of a valid nonce in turn, the time
// and the MAC: every change is refused.
func TestNonceTampered(t *testing.T) {
	n := mustNonceSource(t, time.Minute, nonceKey(1, 32))
	now := nonceEpoch.Add(time.Second)
	raw, err := base64.RawURLEncoding.DecodeString(n.current(now))
	require.NoError(t, err)
	require.Len(t, raw, 24)
	for i := range raw {
		for _, flip := range []byte{0x01, 0x80} {
			b := bytes.Clone(raw)
			b[i] ^= flip
			assert.False(t, n.valid(base64.RawURLEncoding.EncodeToString(b), now, time.Hour), "byte %d ^ %#x", i, flip)
		}
	}
	// A slot moved by one, with the MAC of the original slot.
	b := bytes.Clone(raw)
	b[7]++
	assert.False(t, n.valid(base64.RawURLEncoding.EncodeToString(b), now, time.Hour))
}

// TestNonceMalformed checks that nonces of the wrong length or encoding
// are refused, also when what they decode to would be valid.
func TestNonceMalformed(t *testing.T) {
	n := mustNonceSource(t, time.Minute, nonceKey(1, 32))
	now := nonceEpoch.Add(time.Second)
	good := n.current(now)
	require.True(t, n.valid(good, now, 0))
	raw, err := base64.RawURLEncoding.DecodeString(good)
	require.NoError(t, err)
	std := base64.StdEncoding.EncodeToString(raw)
	tests := []struct{ name, nonce string }{
		{"empty", ""},
		{"one character short", good[:31]},
		{"four characters short", good[:28]},
		{"one character more", good + "A"},
		{"four characters more", good + "AAAA"},
		{"padding", good + "="},
		{"padding inside", good[:30] + "=="},
		{"standard alphabet", strings.NewReplacer("-", "+", "_", "/").Replace(good) + "+/"},
		{"space", " " + good[1:]},
		{"newline", good[:16] + "\n" + good[17:]},
		{"non-ASCII", "é" + good[2:]},
		{"twice", good + good},
	}
	if std != good { // the standard alphabet differs only when raw has '+' or '/' characters
		tests = append(tests, struct{ name, nonce string }{"standard base64", std})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.False(t, n.valid(tc.nonce, now, time.Hour))
		})
	}
}

// TestNewNonceSourceBounds checks the bounds on keys (at least one, each
// of at least 32 bytes) and on the lifetime (2 seconds to 24 hours; zero
// means 5 minutes), and that the errors show no key.
func TestNewNonceSourceBounds(t *testing.T) {
	k32 := nonceKey('k', 32)
	tests := []struct {
		name     string
		keys     [][]byte
		lifetime time.Duration
		want     time.Duration // the lifetime used; zero: an error
	}{
		{"32-byte key, at the bound", [][]byte{k32}, time.Minute, time.Minute},
		{"31-byte key, just past it", [][]byte{nonceKey('s', 31)}, time.Minute, 0},
		{"31-byte old key", [][]byte{k32, nonceKey('s', 31)}, time.Minute, 0},
		{"empty key", [][]byte{k32, {}}, time.Minute, 0},
		{"nil key", [][]byte{nil}, time.Minute, 0},
		{"no keys", nil, time.Minute, 0},
		{"empty key list", [][]byte{}, time.Minute, 0},
		{"zero lifetime", [][]byte{k32}, 0, 5 * time.Minute},
		{"2 s lifetime, at the bound", [][]byte{k32}, 2 * time.Second, 2 * time.Second},
		{"just under 2 s", [][]byte{k32}, 2*time.Second - time.Nanosecond, 0},
		{"24 h lifetime, at the bound", [][]byte{k32}, 24 * time.Hour, 24 * time.Hour},
		{"just over 24 h", [][]byte{k32}, 24*time.Hour + time.Nanosecond, 0},
		{"negative lifetime", [][]byte{k32}, -time.Minute, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n, err := newNonceSource(tc.keys, tc.lifetime)
			if tc.want == 0 {
				require.Error(t, err)
				assert.Nil(t, n)
				assert.True(t, strings.HasPrefix(err.Error(), "introspection: "), err.Error())
				assert.NotContains(t, err.Error(), "kkkk")
				assert.NotContains(t, err.Error(), "ssss")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, n.lifetime)
			now := nonceEpoch.Add(time.Second)
			assert.True(t, n.valid(n.current(now), now, 0))
		})
	}
}

// TestNonceShortestLifetime checks the 2-second lifetime, whose slots are
// one second long.
func TestNonceShortestLifetime(t *testing.T) {
	n := mustNonceSource(t, 2*time.Second, nonceKey(1, 32))
	nonce := n.current(nonceEpoch.Add(999 * time.Millisecond))
	assert.Equal(t, nonce, n.current(nonceEpoch))
	assert.NotEqual(t, nonce, n.current(nonceEpoch.Add(time.Second)))
	assert.True(t, n.valid(nonce, nonceEpoch.Add(2*time.Second), 0))
	assert.False(t, n.valid(nonce, nonceEpoch.Add(2*time.Second+time.Nanosecond), 0))
}

// TestNonceSourceKeepsItsOwnKeys checks that the source copies the keys:
// changing the caller's slices afterwards changes nothing.
func TestNonceSourceKeepsItsOwnKeys(t *testing.T) {
	key := nonceKey(1, 32)
	keys := [][]byte{key}
	n := mustNonceSource(t, time.Minute, keys...)
	want := mustNonceSource(t, time.Minute, nonceKey(1, 32)).current(nonceEpoch)
	key[0] = 2
	keys[0] = nonceKey(3, 32)
	assert.Equal(t, want, n.current(nonceEpoch))
}

// TestNonceSourceHidesKeys prints a source with every fmt verb and logs it
// with log/slog: no key shows, in any encoding.
func TestNonceSourceHidesKeys(t *testing.T) {
	key := []byte("0123456789abcdefghijklmnopqrstuvwxyz")
	n := mustNonceSource(t, time.Minute, key)
	shown := []string{string(key[:8]), fmt.Sprintf("%x", key[:8]), fmt.Sprintf("%X", key[:8]), fmt.Sprint(key[:4])[1:8], base64.StdEncoding.EncodeToString(key[:9])}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
		for _, arg := range []any{n, *n, []*nonceSource{n}} {
			out := fmt.Sprintf(verb, arg)
			assert.Contains(t, out, "REDACTED", verb)
			for _, s := range shown {
				assert.NotContains(t, out, s, "%s of %T", verb, arg)
			}
		}
	}
	for _, h := range []func(io.Writer) slog.Handler{
		func(w io.Writer) slog.Handler { return slog.NewTextHandler(w, nil) },
		func(w io.Writer) slog.Handler { return slog.NewJSONHandler(w, nil) },
	} {
		var buf bytes.Buffer
		slog.New(h(&buf)).Info("nonces", "source", n, "value", *n)
		assert.Contains(t, buf.String(), "lifetime")
		for _, s := range shown {
			assert.NotContains(t, buf.String(), s)
		}
	}
}

// TestNonceConcurrentUse makes and checks nonces of both keys of a
// rotation from many goroutines at once, as the middleware does: each
// check gives the answer it gives alone.
func TestNonceConcurrentUse(t *testing.T) {
	oldKey, newKey := nonceKey(1, 32), nonceKey(2, 32)
	old := mustNonceSource(t, time.Minute, oldKey).current(nonceEpoch)
	n := mustNonceSource(t, time.Minute, newKey, oldKey)
	other := mustNonceSource(t, time.Minute, nonceKey(3, 32)).current(nonceEpoch)
	var wrong atomic.Int64
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 200 {
				now := nonceEpoch.Add(time.Duration(g+i) * time.Millisecond)
				if n.current(now) != n.current(nonceEpoch) || !n.valid(n.current(now), now, 0) ||
					!n.valid(old, now, 0) || n.valid(other, now, 0) {
					wrong.Add(1)
				}
			}
		})
	}
	wg.Wait()
	assert.Zero(t, wrong.Load())
}

// BenchmarkNonce measures making the current nonce and checking one, with
// two keys as during a rotation (a nonce of the old key costs both MACs).
func BenchmarkNonce(b *testing.B) {
	n, err := newNonceSource([][]byte{nonceKey(2, 32), nonceKey(1, 32)}, 0)
	if err != nil {
		b.Fatal(err)
	}
	now := nonceEpoch.Add(time.Second)
	b.Run("current", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = n.current(now)
		}
	})
	b.Run("valid", func(b *testing.B) {
		nonce := n.current(now)
		b.ReportAllocs()
		for b.Loop() {
			if !n.valid(nonce, now, 0) {
				b.Fatal("invalid")
			}
		}
	})
}
