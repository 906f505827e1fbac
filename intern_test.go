package introspection

import (
	"context"
	"fmt"
	"hash/maphash"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// answersServer answers each token with its body from answers, an inactive
// answer for any other token, and counts the requests for each token.
func answersServer(t *testing.T, answers map[string]string) (*httptest.Server, func(token string) int) {
	t.Helper()
	var mu sync.Mutex
	requests := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := r.PostFormValue("token")
		mu.Lock()
		requests[tok]++
		mu.Unlock()
		body, ok := answers[tok]
		if !ok {
			body = `{"active":false}`
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv, func(token string) int {
		mu.Lock()
		defer mu.Unlock()
		return requests[token]
	}
}

// TestCacheNeverMergesDifferentValues checks that the values the built-in
// cache shares between entries are shared only when equal: a token whose
// answer differs from an earlier one only in how a value is spelled (a
// string with NUL bytes against a list, a string against an array) gets,
// from the cache, exactly the verdict, scopes, audience and claims that the
// server sent for it.
func TestCacheNeverMergesDifferentValues(t *testing.T) {
	const exp = `"exp":4102444800`
	tests := []struct {
		name     string
		settings func(*Settings)
		first    string // answer for a token verified before
		second   string // answer for the token whose verdict must not change
		wantErr  error  // the second token's verdict; nil means accepted
	}{
		{
			name:     "scope with NUL against scope list",
			settings: func(s *Settings) { s.RequiredScopes = []string{"read", "write"} },
			first:    `{"active":true,` + exp + `,"scope":"read write"}`,
			second:   `{"active":true,` + exp + `,"scope":"read\u0000write"}`,
			wantErr:  ErrInsufficientScope,
		},
		{
			name:     "scope with NUL against scope array",
			settings: func(s *Settings) { s.RequiredScopes = []string{"read", "write"} },
			first:    `{"active":true,` + exp + `,"scope":["read","write"]}`,
			second:   `{"active":true,` + exp + `,"scope":"read\u0000write"}`,
			wantErr:  ErrInsufficientScope,
		},
		{
			name:     "aud with NUL against Settings.Audience",
			settings: func(s *Settings) { s.Audience = []string{"https://mcp.example.com/mcp"} },
			first:    `{"active":true,` + exp + `,"aud":["other","https://mcp.example.com/mcp"]}`,
			second:   `{"active":true,` + exp + `,"aud":"other\u0000https://mcp.example.com/mcp"}`,
			wantErr:  ErrAudienceMismatch,
		},
		{
			name:   "scope claim string against array",
			first:  `{"active":true,` + exp + `,"scope":["read","write"]}`,
			second: `{"active":true,` + exp + `,"scope":"[\u0000read\u0000write"}`,
		},
		{
			name:   "aud claim string against array",
			first:  `{"active":true,` + exp + `,"aud":["a","b"]}`,
			second: `{"active":true,` + exp + `,"aud":"[\u0000a\u0000b"}`,
		},
		{
			name:   "aud claim array against string",
			first:  `{"active":true,` + exp + `,"aud":"[\u0000a"}`,
			second: `{"active":true,` + exp + `,"aud":["a"]}`,
		},
		{
			name:   "scope list split differently",
			first:  `{"active":true,` + exp + `,"scp":["a b","c"]}`,
			second: `{"active":true,` + exp + `,"scp":["a","b c"]}`,
		},
		{
			name:   "client_id and iss with NUL",
			first:  `{"active":true,` + exp + `,"client_id":"app","iss":"https://as"}`,
			second: `{"active":true,` + exp + `,"client_id":"app\u0000","iss":"https://as\u0000"}`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, requests := answersServer(t, map[string]string{"first": tc.first, "second": tc.second})
			v := newVerifier(t, srv.URL, nil, func(s *Settings) {
				s.CacheTTL = time.Hour
				s.NegativeCacheTTL = time.Hour
				if tc.settings != nil {
					tc.settings(s)
				}
			})
			ctx := context.Background()
			_, _ = v.Verify(ctx, "first")
			_, _ = v.Verify(ctx, "first") // from the cache
			want, err := decodeAnswer([]byte(tc.second))
			require.NoError(t, err)
			for call := 1; call <= 2; call++ {
				tok, err := v.Verify(ctx, "second")
				if tc.wantErr != nil {
					require.ErrorIs(t, err, tc.wantErr, "call %d", call)
					assert.Nil(t, tok)
					continue
				}
				require.NoError(t, err, "call %d", call)
				assert.Equal(t, want.accessToken("second", true), tok, "call %d", call)
			}
			require.Equal(t, 1, requests("first"))
			require.Equal(t, 1, requests("second"), "the second call was answered by the cache")
		})
	}
}

// TestSharedValuesLeaveWithTheirEntries fills a cache of 10 entries with
// 1,000 answers whose scope strings, about 8 KiB each, all differ, and
// measures the heap the cache keeps: no more than its 10 entries and the
// interner's bound, however many values went through it.
func TestSharedValuesLeaveWithTheirEntries(t *testing.T) {
	const tokens, size, scopeLen = 1000, 10, 8 << 10
	ctx := context.Background()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	c := newMemoryCache(size, time.Now)
	for i := range tokens {
		var scope strings.Builder
		for j := 0; scope.Len() < scopeLen; j++ {
			fmt.Fprintf(&scope, "t%d-scope%d ", i, j)
		}
		a, err := decodeAnswer(fmt.Appendf(nil, `{"active":true,"scope":%q}`, scope.String()))
		require.NoError(t, err)
		c.set(ctx, fmt.Sprint("tok-", i), a, time.Hour)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	require.Equal(t, size, c.len())
	held := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	// An entry holds its scope string and the list of its scopes: under
	// 1,000 scopes of a 16-byte string header each. Allow twice that, and
	// all the interner may hold.
	limit := int64(size*2*(scopeLen+16*1000) + maxInternedBytes)
	t.Logf("heap held: %d bytes for %d entries (limit %d)", held, size, limit)
	assert.Less(t, held, limit)
	runtime.KeepAlive(c)
}

// TestInternerBounds checks the interner's bounds: a value of
// maxInternedValue (its text and internOverhead for it and for each string
// in a list) is shared and one a byte larger is not, and what the interner
// holds never passes maxInternedBytes.
func TestInternerBounds(t *testing.T) {
	in := newInterner()
	in.mu.Lock()
	defer in.mu.Unlock()
	sharedString := func(s string) bool {
		first := in.value(strings.Clone(s)).(string)
		second := in.value(strings.Clone(s)).(string)
		return unsafe.StringData(first) == unsafe.StringData(second)
	}
	assert.True(t, sharedString(strings.Repeat("a", maxInternedValue-internOverhead)), "a string at the bound")
	assert.False(t, sharedString(strings.Repeat("b", maxInternedValue-internOverhead+1)), "a string just past the bound")

	// list returns four strings that cost, as a list, size.
	list := func(size int, c string) []string {
		l := make([]string, 4)
		for i := range l {
			n := (size-internOverhead)/4 - internOverhead
			if i == 0 {
				n += (size - internOverhead) % 4
			}
			l[i] = strings.Repeat(c, n)
		}
		return l
	}
	sharedArray := func(l []string) bool {
		a, b := make([]any, len(l)), make([]any, len(l))
		for i := range l {
			a[i], b[i] = strings.Clone(l[i]), strings.Clone(l[i])
		}
		first, second := in.value(a).([]any), in.value(b).([]any)
		return &first[0] == &second[0]
	}
	sharedStrings := func(l []string) bool {
		first, second := in.strings(slices.Clone(l)), in.strings(slices.Clone(l))
		return &first[0] == &second[0]
	}
	assert.True(t, sharedArray(list(maxInternedValue, "c")), "an array at the bound")
	assert.False(t, sharedArray(list(maxInternedValue+1, "d")), "an array just past the bound")
	assert.True(t, sharedStrings(list(maxInternedValue, "e")), "a list at the bound")
	assert.False(t, sharedStrings(list(maxInternedValue+1, "f")), "a list just past the bound")
	assert.False(t, sharedStrings(make([]string, maxInternedValue/internOverhead)), "many empty strings")

	for i := range 10_000 {
		in.value(fmt.Sprintf("value-%d-%s", i, strings.Repeat("g", i%maxInternedValue)))
		in.strings([]string{fmt.Sprint(i), "x"})
		in.value([]any{fmt.Sprint(i), ""})
		require.LessOrEqual(t, in.bytes, maxInternedBytes)
	}
}

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

// TestInternerKeepsSharingUpToItsBound checks that the interner starts
// over only when a new value would take it past maxInternedBytes: filled to
// exactly the bound, it still shares every value it took, and one value
// more makes it forget them and hold only that value.
func TestInternerKeepsSharingUpToItsBound(t *testing.T) {
	in := newInterner()
	in.mu.Lock()
	defer in.mu.Unlock()
	const cost = 1 << 10 // internOverhead and the text of each value
	stored := make([]string, maxInternedBytes/cost)
	for i := range stored {
		stored[i] = in.value(fmt.Sprintf("%0*d", cost-internOverhead, i)).(string)
	}
	require.Equal(t, maxInternedBytes, in.bytes)
	shared := func(s string) bool {
		got := in.value(strings.Clone(s)).(string)
		return unsafe.StringData(got) == unsafe.StringData(s)
	}
	for i, s := range stored {
		assert.True(t, shared(s), "value %d, at the bound", i)
	}
	assert.Equal(t, maxInternedBytes, in.bytes, "nothing new was added")

	in.value("x")
	assert.Equal(t, internOverhead+1, in.bytes, "started over")
	assert.False(t, shared(stored[0]), "a value from before the start")
}

// TestCompactSharesEqualLists checks that two cached answers with the same
// scopes and audience hold one copy of each list, the saving the interner
// is for, and that an answer without them gets none.
func TestCompactSharesEqualLists(t *testing.T) {
	in := newInterner()
	compact := func(body string) *answer {
		a, err := decodeAnswer([]byte(body))
		require.NoError(t, err)
		return a.compact(in)
	}
	const body = `{"active":true,"scope":"read write","aud":["https://mcp.example.com/mcp"]}`
	first, second := compact(body), compact(body)
	require.Equal(t, []string{"read", "write"}, second.scopes)
	require.Equal(t, []string{"https://mcp.example.com/mcp"}, second.audience)
	assert.Same(t, &first.scopes[0], &second.scopes[0], "scopes held once")
	assert.Same(t, &first.audience[0], &second.audience[0], "audience held once")

	none := compact(`{"active":true}`)
	assert.Nil(t, none.scopes)
	assert.Nil(t, none.audience)
}
