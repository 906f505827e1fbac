package introspection

import (
	"context"
	"fmt"
	"hash/maphash"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpauth/introspection/introspectiontest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSharedValuesNeverHoldMoreThanTheyCount fills a small built-in cache
// with answers whose scope is one short, distinct scope padded with white
// space up to the bound of an entry. The list of scopes is a share of the
// interner's bound, but its one string is a piece of the padded scope
// string: the interner must hold no more than the text it counts, and
// nothing of an answer once its entry has left.
func TestSharedValuesNeverHoldMoreThanTheyCount(t *testing.T) {
	const tokens, size = 900, 10
	pad := strings.Repeat(" ", maxCachedAnswer-100)
	ctx := context.Background()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	c := newMemoryCache(size, time.Now)
	for i := range tokens {
		a, err := decodeAnswer(fmt.Appendf(nil, `{"active":true,"scope":"s%d%s"}`, i, pad))
		require.NoError(t, err)
		require.LessOrEqual(t, int(a.size), maxCachedAnswer)
		c.set(ctx, fmt.Sprint("tok-", i), a, time.Hour)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	require.Equal(t, size, c.len())
	held := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	// Each entry holds its answer; the interner at most what it counts,
	// with room for the map it keeps that in.
	limit := int64(size*2*maxCachedAnswer + 4*maxInternedBytes)
	t.Logf("heap held: %d bytes for %d entries (limit %d)", held, size, limit)
	assert.Less(t, held, limit)
	runtime.KeepAlive(c)
}

// TestInternerSharesOnlyValuesOfTheSameType stores, under the hash of an
// empty value, a value of another type, as a collision of the 64-bit hash
// would: the interner must compare the types too and never hand back the
// other value.
func TestInternerSharesOnlyValuesOfTheSameType(t *testing.T) {
	hashOf := func(in *interner, tag byte, strs ...string) uint64 {
		var h maphash.Hash
		h.SetSeed(in.seed)
		_ = h.WriteByte(tag)
		if tag != tagString {
			writeLen(&h, len(strs))
		}
		for _, s := range strs {
			writeString(&h, s)
		}
		return h.Sum64()
	}
	tests := []struct {
		name   string
		stored any  // what the colliding entry holds
		tag    byte // of the value asked for
		value  any  // the value asked for
		strs   []string
	}{
		{"an empty string against a list", []any{}, tagString, "", []string{""}},
		{"an empty string against a list of strings", []string{}, tagString, "", []string{""}},
		{"an empty list against a string", "", tagArray, []any{}, nil},
		{"an empty list against a list of strings", []string{}, tagArray, []any{}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := newInterner()
			in.mu.Lock()
			defer in.mu.Unlock()
			in.m[hashOf(in, tc.tag, tc.strs...)] = tc.stored
			got := in.value(tc.value)
			assert.IsType(t, tc.value, got, "the value must keep its type")
		})
	}
	t.Run("an empty list of strings against a list", func(t *testing.T) {
		in := newInterner()
		in.mu.Lock()
		defer in.mu.Unlock()
		in.m[hashOf(in, tagStrings)] = []any{}
		assert.NotPanics(t, func() { assert.Equal(t, []string{}, in.strings([]string{})) })
	})
}

// goexitTransport ends the goroutine of its first round trip with
// runtime.Goexit, as a t.FailNow in a test double does, and answers the
// others from rt.
type goexitTransport struct {
	rt    http.RoundTripper
	calls atomic.Int32
}

func (g *goexitTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if g.calls.Add(1) == 1 {
		runtime.Goexit()
	}
	return g.rt.RoundTrip(r)
}

// TestSharedRequestThatEndsWithoutAnAnswerReleasesTheToken has the
// transport end the shared request's goroutine without a panic or an
// answer. Its callers get an error, and the token is not wedged: the next
// call makes a request of its own and gets the server's verdict.
func TestSharedRequestThatEndsWithoutAnAnswerReleasesTheToken(t *testing.T) {
	cacheKinds(t, func(t *testing.T, withCache func(*Settings)) {
		as := newAS(t, nil)
		tok := as.Issue(introspectiontest.TokenOptions{})
		tr := &goexitTransport{rt: http.DefaultTransport}
		v := newVerifier(t, as.IntrospectionURL, nil, func(s *Settings) {
			s.HTTPClient = &http.Client{Transport: tr}
			s.CacheTTL = time.Minute
			withCache(s)
		})
		first, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := v.Verify(first, tok)
		require.ErrorIs(t, err, ErrIntrospectionFailed, "the first call fails, not its context")

		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		got, err := v.Verify(ctx, tok)
		require.NoError(t, err, "the token must not stay wedged")
		assert.Equal(t, "app", got.ClientID)
		assert.EqualValues(t, 2, tr.calls.Load())
		waitUntilIdle(t, v)
		s := v.Stats()
		assert.EqualValues(t, 2, s.Verifications)
		assert.EqualValues(t, 1, s.Failed)
	})
}

// backwardClock goes back a minute each time it is read, as a wall clock
// stepped back by NTP would between two readings.
type backwardClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *backwardClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(-time.Minute)
	return c.t
}

// TestBackwardClockNeverLengthensAnEntry has Settings.Now go back while the
// answer is fetched and stored: the TTL handed to the Cache must never
// exceed CacheTTL, nor reach past the token's exp.
func TestBackwardClockNeverLengthensAnEntry(t *testing.T) {
	clock := &backwardClock{t: time.Now()}
	as := newAS(t, nil)
	tok := as.Issue(introspectiontest.TokenOptions{Lifetime: 24 * time.Hour})
	mc := newMapCache(time.Now)
	v := newVerifier(t, as.IntrospectionURL, nil, func(s *Settings) {
		s.CacheTTL = time.Minute
		s.Cache = mc
		s.Now = clock.Now
		s.Leeway = time.Hour // the clock's steps never reject the token
	})
	_, err := v.Verify(context.Background(), tok)
	require.NoError(t, err)
	waitUntilIdle(t, v)
	mc.mu.Lock()
	defer mc.mu.Unlock()
	require.Len(t, mc.ttls, 1)
	assert.LessOrEqual(t, mc.ttls[0], time.Minute)
}
