package introspection

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// paddedAnswer returns an active answer of exactly size bytes of JSON.
func paddedAnswer(t *testing.T, size int) string {
	t.Helper()
	const head, tail = `{"active":true,"exp":4102444800,"pad":"`, `"}`
	body := head + strings.Repeat("x", size-len(head)-len(tail)) + tail
	require.Len(t, body, size)
	return body
}

// manyValues returns an active answer of exactly n JSON values.
func manyValues(t *testing.T, n int) string {
	t.Helper()
	// The object, active, exp and the array are four values.
	body := `{"active":true,"exp":4102444800,"pad":[` + strings.TrimSuffix(strings.Repeat("0,", n-4), ",") + `]}`
	require.Equal(t, n, scanJSON([]byte(body)).values)
	return body
}

// TestCacheEntrySizeBound checks the bounds on one entry of the built-in
// cache: an answer of maxCachedAnswer bytes of JSON, or of maxCachedValues
// JSON values, is kept; one a byte or a value larger is used but not kept.
func TestCacheEntrySizeBound(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		cached bool
	}{
		{"bytes at the bound", paddedAnswer(t, maxCachedAnswer), true},
		{"bytes just past the bound", paddedAnswer(t, maxCachedAnswer+1), false},
		{"bytes at the 1 MiB answer cap", paddedAnswer(t, maxBodySize), false},
		{"values at the bound", manyValues(t, maxCachedValues), true},
		{"values just past the bound", manyValues(t, maxCachedValues+1), false},
		{"values past 65,535", manyValues(t, 70_000), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, requests := answersServer(t, map[string]string{"tok": tc.body})
			v := newVerifier(t, srv.URL, nil, func(s *Settings) { s.CacheTTL = time.Hour })
			want, err := decodeAnswer([]byte(tc.body))
			require.NoError(t, err)
			for call := 1; call <= 2; call++ {
				tok, err := v.Verify(context.Background(), "tok")
				require.NoError(t, err, "call %d: the answer is used", call)
				assert.Equal(t, want.claims, tok.Claims, "call %d", call)
				// The next call must not share this one's request while it
				// is being stored: it finds the cache as the store left it.
				waitUntilIdle(t, v)
			}
			if tc.cached {
				assert.Equal(t, 1, requests("tok"))
				assert.Equal(t, 1, v.Stats().CacheEntries)
			} else {
				assert.Equal(t, 2, requests("tok"))
				assert.Zero(t, v.Stats().CacheEntries)
			}
		})
	}
}

// TestCacheEntryMemoryBound fills the built-in cache with answers within
// both bounds of an entry, shaped to take the most memory once decoded,
// and checks the heap each entry holds.
func TestCacheEntryMemoryBound(t *testing.T) {
	// fill repeats unit, of per values, inside an answer up to both bounds.
	fill := func(unit string, per int) string {
		const head, tail = `{"active":true,"x":[`, `]}` // three values
		n := min((maxCachedAnswer-len(head)-len(tail)+1)/(len(unit)+1), (maxCachedValues-3)/per)
		body := head + strings.TrimSuffix(strings.Repeat(unit+",", n), ",") + tail
		a, err := decodeAnswer([]byte(body))
		require.NoError(t, err)
		require.LessOrEqual(t, int(a.size), maxCachedAnswer)
		require.LessOrEqual(t, int(a.values), maxCachedValues)
		return body
	}
	long := strings.Repeat("k", 110)
	tests := []struct {
		name string
		body string
	}{
		{"one long string", fill(`"`+strings.Repeat("s", maxCachedAnswer-30)+`"`, 1)},
		{"objects of one member", fill(`{"":0}`, 2)},
		{"objects of one object", fill(`{"":{}}`, 2)},
		{"objects of one long name", fill(`{"`+long+`":{}}`, 2)},
		{"objects of nine members", fill(`{"a":0,"b":0,"c":0,"d":0,"e":0,"f":0,"g":0,"h":0,"i":0}`, 10)},
		{"empty objects", fill(`{}`, 1)},
		{"strings", fill(`"`+strings.Repeat("s", 60)+`"`, 1)},
	}
	const perEntry = 96 << 10
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			const n = 100
			ctx := context.Background()
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			c := newMemoryCache(n, time.Now)
			for i := range n {
				a, err := decodeAnswer([]byte(tc.body))
				require.NoError(t, err)
				c.set(ctx, fmt.Sprint("tok-", i), a, time.Hour)
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			require.Equal(t, n, c.len(), "every answer was kept")
			held := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / n
			t.Logf("%d bytes of JSON, %d bytes of heap an entry", len(tc.body), held)
			assert.Less(t, held, int64(perEntry))
			runtime.KeepAlive(c)
		})
	}
}

// TestCacheEntrySizeBoundReplacesOlderEntry checks that an answer too large
// to keep also ends the entry an earlier answer for the token made.
func TestCacheEntrySizeBoundReplacesOlderEntry(t *testing.T) {
	ctx := context.Background()
	c := newMemoryCache(10, time.Now)
	small, err := decodeAnswer([]byte(paddedAnswer(t, 100)))
	require.NoError(t, err)
	large, err := decodeAnswer([]byte(paddedAnswer(t, maxCachedAnswer+1)))
	require.NoError(t, err)
	c.set(ctx, "tok", small, time.Hour)
	_, ok := c.get(ctx, "tok", time.Now())
	require.True(t, ok)
	c.set(ctx, "tok", large, time.Hour)
	_, ok = c.get(ctx, "tok", time.Now())
	assert.False(t, ok, "the older answer is not kept in place of the newer one")
	assert.Zero(t, c.len())
}
