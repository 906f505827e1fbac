package introspection

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// This file holds tests that pin bounds and edge cases which mutation
// testing (see MUTANTS.md) found unchecked by the other tests.

// TestTruncateAtAndPastTheBound checks that server text of exactly n bytes
// is kept whole, one byte more is cut to n bytes and marked, and that every
// control character, DEL included, becomes a space while a space and
// printable text stay as they are.
func TestTruncateAtAndPastTheBound(t *testing.T) {
	tests := []struct {
		name, in string
		n        int
		want     string
	}{
		{"empty", "", 4, ""},
		{"at the bound", "abcd", 4, "abcd"},
		{"one past the bound", "abcde", 4, "abcd…"},
		{"cut inside a rune", "aé", 2, "a…"},
		{"rune ends at the bound", "aé", 3, "aé"},
		{"bound zero", "a", 0, "…"},
		{"unit separator", "a\x1fb", 8, "a b"},
		{"space", "a b", 8, "a b"},
		{"DEL", "a\x7fb", 8, "a b"},
		{"tilde", "a~b", 8, "a~b"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, truncate(tc.in, tc.n))
		})
	}
}

// TestNumericDateBounds checks the range of an RFC 7519 NumericDate in an
// answer: zero and the last second of year 9999 are dates, one second
// later and any negative number are malformed, and a fraction of a second
// is kept.
func TestNumericDateBounds(t *testing.T) {
	tests := []struct {
		name  string
		value string
		want  time.Time // zero: malformed
	}{
		{"zero", "0", time.Unix(0, 0).UTC()},
		{"fraction", "1.5", time.Unix(1, 500_000_000).UTC()},
		{"last second of 9999", strconv.Itoa(maxNumericDate), time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)},
		{"a second later", strconv.Itoa(maxNumericDate + 1), time.Time{}},
		{"half a second later", strconv.Itoa(maxNumericDate) + ".5", time.Time{}},
		{"negative", "-1", time.Time{}},
		{"negative fraction", "-0.5", time.Time{}},
	}
	for _, tc := range tests {
		for _, member := range []string{"exp", "iat", "nbf"} {
			t.Run(tc.name+"/"+member, func(t *testing.T) {
				a, err := decodeAnswer([]byte(`{"active":true,"` + member + `":` + tc.value + `}`))
				if tc.want.IsZero() {
					require.Error(t, err)
					assert.Equal(t, `answer member "`+member+`" is not a valid NumericDate`, err.Error())
					return
				}
				require.NoError(t, err)
				got := map[string]time.Time{"exp": a.expiresAt, "iat": a.issuedAt, "nbf": a.notBefore}[member]
				assert.True(t, tc.want.Equal(got), "got %v", got)
			})
		}
	}
}

// TestChallengeAttributeCharacterBounds checks, character by character at
// the edges of each allowed range, what the WWW-Authenticate challenge
// keeps: a scope or resource_metadata value only RFC 6750 §3's %x21 /
// %x23-5B / %x5D-7E, a realm printable ASCII but '"' and '\'.
func TestChallengeAttributeCharacterBounds(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		attr   string // what filterAttr keeps
		quoted string // what filterQuoted keeps
	}{
		{"unit separator", "\x1f", "", ""},
		{"space", " ", "", " "},
		{"exclamation mark", "!", "!", "!"},
		{"quotation mark", `"`, "", ""},
		{"number sign", "#", "#", "#"},
		{"left bracket", "[", "[", "["},
		{"backslash", `\`, "", ""},
		{"right bracket", "]", "]", "]"},
		{"tilde", "~", "~", "~"},
		{"DEL", "\x7f", "", ""},
		{"non-ASCII", "é", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, "a"+tc.attr+"b", filterAttr("a"+tc.in+"b"), "scope and resource_metadata")
			assert.Equal(t, "a"+tc.quoted+"b", filterQuoted("a"+tc.in+"b"), "realm")
		})
	}
}

// TestParseReasonHidesQuotedUserInformation checks parseReason on its own,
// with reasons that url.Parse may word differently in another Go release:
// every quoted part that occurs in the text before the last "@" is shown
// as REDACTED, wherever it stands in the reason, and what cannot be read as
// quoted text is dropped.
func TestParseReasonHidesQuotedUserInformation(t *testing.T) {
	const raw = "https://u:pw@as.example/"
	tests := []struct {
		name   string
		err    error
		raw    string
		reason string
	}{
		{"no user information", &url.Error{Op: "parse", URL: "x", Err: errors.New(`bad "pw"`)}, "https://as/pw", `: bad "pw"`},
		{"quote at the start", &url.Error{Op: "parse", URL: "x", Err: errors.New(`"pw" is bad`)}, raw, `: "REDACTED" is bad`},
		{"quote at the end", &url.Error{Op: "parse", URL: "x", Err: errors.New(`bad "u:pw"`)}, raw, `: bad "REDACTED"`},
		{"two quotes", &url.Error{Op: "parse", URL: "x", Err: errors.New(`"pw" before "as.example"`)}, raw, `: "REDACTED" before "as.example"`},
		{"unbalanced quote", &url.Error{Op: "parse", URL: "x", Err: errors.New(`bad "pw`)}, raw, `: bad `},
		{"no cause", &url.Error{Op: "parse", URL: "x"}, raw, ""},
		{"not a url.Error", errors.New(`bad "pw"`), raw, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.reason, parseReason(tc.err, tc.raw))
		})
	}
}

// TestScrubLowercaseEscapesAtTheEndsOfTheHexLetters checks that a secret
// form-encoded with lowercase hex escapes is found whatever hex letter its
// escapes hold, "a" and "f" included.
func TestScrubLowercaseEscapesAtTheEndsOfTheHexLetters(t *testing.T) {
	tests := []struct{ secret, lower string }{
		{"s*t", "s%2at"},    // '*' is %2A
		{"s\nt", "s%0at"},   // '\n' is %0A
		{"s/t", "s%2ft"},    // '/' is %2F
		{"s\x1ft", "s%1ft"}, // unit separator is %1F
		{"s\x10t", "s%10t"}, // no letter at all
	}
	for _, tc := range tests {
		t.Run(tc.lower, func(t *testing.T) {
			assert.Equal(t, "x=REDACTED&y", scrub("x="+tc.lower+"&y", tc.secret))
		})
	}
}

// TestDisplayURLHidesUserInformation checks what an error or a log line may
// show of an IntrospectionURL: everything from after "//" up to the last
// "@" is REDACTED, also when the URL has no scheme or begins with "@", and
// a URL without "@" is shown as it is.
func TestDisplayURLHidesUserInformation(t *testing.T) {
	tests := []struct{ raw, shown string }{
		{"https://as.example/i", "https://as.example/i"},
		{"https://u:p@as.example/i", "https://REDACTED@as.example/i"},
		{"https://u:p@as.example/i?x=@", "https://REDACTED@"}, // the last "@": more hidden, never less
		{"//u:p@as.example/i", "//REDACTED@as.example/i"},
		{"u:p@as.example", "REDACTED@as.example"},
		{"@as.example", "REDACTED@as.example"},
		{"https://@as.example", "https://REDACTED@as.example"},
		{"u:p@as.example//x", "REDACTED@as.example//x"},
	}
	for _, tc := range tests {
		t.Run(tc.raw, func(t *testing.T) {
			assert.Equal(t, tc.shown, displayURL(tc.raw))
		})
	}
}

// TestAccessTokenParamAfterEmptyPairs checks that a query or form body is
// read pair by pair however its separators fall: an access_token after a
// leading, doubled or mixed "&" or ";" is found, and empty pairs alone are
// not a token.
func TestAccessTokenParamAfterEmptyPairs(t *testing.T) {
	tests := []struct {
		q     string
		found bool
	}{
		{"&access_token=x", true},
		{";access_token=x", true},
		{"a=1&&access_token=x", true},
		{"a=1;&access_token", true},
		{"&;access%5Ftoken=x", true},
		{"access_token&", true},
		{"", false},
		{"&", false},
		{";;&", false},
		{"&access_tokens=x", false},
	}
	for _, tc := range tests {
		t.Run(tc.q, func(t *testing.T) {
			assert.Equal(t, tc.found, hasAccessTokenParam(tc.q))
		})
	}
}

// TestBufferPoolDropsLargeBuffers checks that a buffer which grew past 64
// KiB to read a large answer is not kept for the next request, so that one
// large answer does not hold its memory for good. (sync.Pool may drop any
// buffer, so only what it must never return is checked.)
func TestBufferPoolDropsLargeBuffers(t *testing.T) {
	for range 20 {
		big := new(bytes.Buffer)
		big.Grow(64<<10 + 1)
		require.Greater(t, big.Cap(), 64<<10)
		putBuffer(big)
		got := bufPool.Get().(*bytes.Buffer)
		assert.NotSame(t, big, got)
		bufPool.Put(got)
	}
}

// TestStatusKindAtTheEndsOfThe3xxRange checks which failure an answer's
// status makes at the edges of the redirect range: 300 and 399 are
// redirects (never followed), 299 and 400 other statuses.
func TestStatusKindAtTheEndsOfThe3xxRange(t *testing.T) {
	tests := []struct {
		status int
		kind   FailureKind
	}{
		{299, FailureStatus},
		{300, FailureRedirect},
		{399, FailureRedirect},
		{400, FailureStatus},
	}
	for _, tc := range tests {
		t.Run(strconv.Itoa(tc.status), func(t *testing.T) {
			srv := jsonServer(t, tc.status, `{"active":true}`)
			v := newVerifier(t, srv.URL, nil, nil)
			_, err := v.Verify(context.Background(), "tok")
			var ie *IntrospectionError
			require.ErrorAs(t, err, &ie)
			assert.Equal(t, tc.kind, ie.Kind)
			assert.Equal(t, tc.status, ie.StatusCode)
		})
	}
}

// TestAccessTokenLogValueHoldsWhatIsSet checks what a log line shows of an
// AccessToken: every member that is set, and no attribute for one that is
// empty, with the client always named.
func TestAccessTokenLogValueHoldsWhatIsSet(t *testing.T) {
	exp := time.Date(2026, 11, 25, 13, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		tok  AccessToken
		want map[string]string
	}{
		{"everything set", AccessToken{Token: "tok", ClientID: "app", Subject: "alice", Username: "al", Issuer: "https://as",
			TokenType: "Bearer", Scopes: []string{"read"}, Audience: []string{"mcp"}, ExpiresAt: exp},
			map[string]string{"client_id": "app", "sub": "alice", "username": "al", "iss": "https://as", "token_type": "Bearer",
				"scopes": "[read]", "aud": "[mcp]", "expires_at": exp.String()}},
		{"only the client", AccessToken{Token: "tok", ClientID: "app"}, map[string]string{"client_id": "app"}},
		{"subject and empty lists", AccessToken{Token: "tok", ClientID: "app", Subject: "alice", Scopes: []string{}, Audience: []string{}},
			map[string]string{"client_id": "app", "sub": "alice", "scopes": "[]", "aud": "[]"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := map[string]string{}
			for _, a := range tc.tok.LogValue().Group() {
				got[a.Key] = a.Value.String()
			}
			assert.Equal(t, tc.want, got)
		})
	}
}

// TestAccessTokenFormatShowsAnEmptyTokenAsEmpty checks that %+v and %#v
// show REDACTED in place of a token, and an empty Token as empty, so that
// the output never suggests a token that is not there.
func TestAccessTokenFormatShowsAnEmptyTokenAsEmpty(t *testing.T) {
	for _, verb := range []string{"%+v", "%#v"} {
		t.Run(verb, func(t *testing.T) {
			with := fmt.Sprintf(verb, AccessToken{Token: "tok", Subject: "alice"})
			assert.Contains(t, with, "REDACTED")
			assert.NotContains(t, with, "tok")
			without := fmt.Sprintf(verb, AccessToken{Subject: "alice"})
			assert.NotContains(t, without, "REDACTED")
			assert.Contains(t, without, "alice")
		})
	}
}

// TestDecodeAnswerSaysWhatIsWrong checks the reason decoding gives for
// valid JSON that is not an object and for an object without a usable
// "active" member, so that an operator reading the error knows which it
// was.
func TestDecodeAnswerSaysWhatIsWrong(t *testing.T) {
	tests := []struct{ body, reason string }{
		{`[true]`, "answer is not a JSON object"},
		{`"active"`, "answer is not a JSON object"},
		{`4102444800`, "answer is not a JSON object"},
		{`null`, "answer is not a JSON object"},
		{`{"scope":"read"}`, `answer has no "active" member`},
		{`{"active":null}`, `answer has no "active" member`},
		{`{"active":"true"}`, `answer member "active" is not a JSON boolean`},
		{`{"active":0}`, `answer member "active" is not a JSON boolean`},
		{`{"active":true,"exp":1e999}`, "answer has a number out of range"},
		{`{"active":true,"ext":[1,-1e400]}`, "answer has a number out of range"},
	}
	for _, tc := range tests {
		t.Run(tc.body, func(t *testing.T) {
			a, err := decodeAnswer([]byte(tc.body))
			require.Error(t, err)
			assert.Nil(t, a)
			assert.Equal(t, tc.reason, err.Error())
		})
	}
}

// TestIntrospectionErrorText checks the text of an IntrospectionError for
// the parts it may have: the status only when there was an answer, the
// server's error code and description, and the cause.
func TestIntrospectionErrorText(t *testing.T) {
	tests := []struct {
		name string
		err  *IntrospectionError
		want string
	}{
		{"kind only", &IntrospectionError{Kind: FailureTimeout},
			"introspection: introspection failed (timeout)"},
		{"status", &IntrospectionError{Kind: FailureStatus, StatusCode: 503},
			"introspection: introspection failed (status): HTTP 503"},
		{"code", &IntrospectionError{Kind: FailureStatus, StatusCode: 401, ErrorCode: "invalid_client"},
			"introspection: introspection failed (status): HTTP 401: invalid_client"},
		{"code and description", &IntrospectionError{Kind: FailureStatus, StatusCode: 401, ErrorCode: "invalid_client", ErrorDescription: "bad secret"},
			"introspection: introspection failed (status): HTTP 401: invalid_client (bad secret)"},
		{"cause", &IntrospectionError{Kind: FailureTransport, Err: errors.New("connection refused")},
			"introspection: introspection failed (transport): connection refused"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, tc.err.Error())
		})
	}
}

// TestMemoryCacheShardsHoldAtLeast256Entries checks how the built-in cache
// splits its capacity: into as many shards, a power of two and at most 64,
// as leave each room for at least 256 entries, so that SIEVE evicts from a
// sample large enough to keep the entries in use.
func TestMemoryCacheShardsHoldAtLeast256Entries(t *testing.T) {
	tests := []struct{ size, shards int }{
		{1, 1},
		{511, 1},
		{512, 2},
		{1023, 2},
		{1024, 4},
		{64*256 - 1, 32},
		{64 * 256, 64},
		{1 << 20, 64},
	}
	for _, tc := range tests {
		t.Run(strconv.Itoa(tc.size), func(t *testing.T) {
			assert.Len(t, newMemoryCache(tc.size, time.Now).shards, tc.shards)
		})
	}
}

// TestMemoryCacheSpreadsEntriesOverShards checks that tokens are spread
// over every shard, so that writes to one do not wait for writes to
// another.
func TestMemoryCacheSpreadsEntriesOverShards(t *testing.T) {
	c := newMemoryCache(64*256, time.Now)
	require.Len(t, c.shards, 64)
	a, err := decodeAnswer([]byte(`{"active":true}`))
	require.NoError(t, err)
	for i := range 64 * 64 {
		c.set(context.Background(), "tok-"+strconv.Itoa(i), a, time.Hour)
	}
	require.Equal(t, 64*64, c.len())
	for i := range c.shards {
		assert.NotEmpty(t, c.shards[i].m, "shard %d", i)
	}
}

// TestMemoryCacheDropsAnExpiredEntryOnGet checks that a lookup that finds
// an expired entry removes it, so that it takes no place in the cache.
func TestMemoryCacheDropsAnExpiredEntryOnGet(t *testing.T) {
	clock := newFakeClock()
	c := newMemoryCache(10, clock.Now)
	a, err := decodeAnswer([]byte(`{"active":true}`))
	require.NoError(t, err)
	c.set(context.Background(), "tok", a, time.Minute)
	_, ok := c.get(context.Background(), "tok", clock.Now().Add(time.Minute-time.Nanosecond))
	require.True(t, ok, "just before it expires")
	require.Equal(t, 1, c.len())
	_, ok = c.get(context.Background(), "tok", clock.Now().Add(time.Minute))
	assert.False(t, ok, "when it expires")
	assert.Zero(t, c.len())
}

// TestMemoryCacheReplacingTheEntryAtTheHand checks SIEVE eviction after the
// entry that the hand points to is replaced: the next eviction takes the
// next unvisited entry, and the new answer for the replaced token stays.
func TestMemoryCacheReplacingTheEntryAtTheHand(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	c := newMemoryCache(2, clock.Now)
	require.Len(t, c.shards, 1)
	a, err := decodeAnswer([]byte(`{"active":true}`))
	require.NoError(t, err)
	c.set(ctx, "a", a, time.Hour)
	c.set(ctx, "b", a, time.Hour)
	c.set(ctx, "c", a, time.Hour) // evicts a; the hand is at b
	c.set(ctx, "b", a, time.Hour) // replaces the entry at the hand
	c.set(ctx, "d", a, time.Hour) // evicts c, the oldest unvisited entry
	now := clock.Now()
	for tok, want := range map[string]bool{"a": false, "b": true, "c": false, "d": true} {
		_, ok := c.get(ctx, tok, now)
		assert.Equal(t, want, ok, tok)
	}
	assert.Equal(t, 2, c.len())
	assert.Equal(t, int64(2), c.count.Load())
}

// TestIntrospectionErrorUnwrap checks that an IntrospectionError satisfies
// errors.Is with ErrIntrospectionFailed and with its cause, and that one
// without a cause unwraps to ErrIntrospectionFailed alone.
func TestIntrospectionErrorUnwrap(t *testing.T) {
	cause := errors.New("connection refused")
	with := &IntrospectionError{Kind: FailureTransport, Err: cause}
	assert.ErrorIs(t, with, ErrIntrospectionFailed)
	assert.ErrorIs(t, with, cause)
	assert.Equal(t, []error{ErrIntrospectionFailed, cause}, with.Unwrap())

	without := &IntrospectionError{Kind: FailureStatus, StatusCode: 503}
	assert.ErrorIs(t, without, ErrIntrospectionFailed)
	assert.Equal(t, []error{ErrIntrospectionFailed}, without.Unwrap())
}
