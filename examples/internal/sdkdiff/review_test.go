package sdkdiff

import (
	"bytes"
	"compress/gzip"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/mcpauth/introspection"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// echoCall is a plain call of echo, which needs scope:echo.
const echoCall = `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}`

// sweep returns bodies that put odd JSON in every place the peek skips or
// reads, for TestPeekNeverStricterThanSDKs: numbers, literals, strings and
// containers that RFC 8259 allows or not, in the arguments, params, id,
// jsonrpc, an unknown member, a member name, a batch element, before and
// after the message; white space (JSON's and other characters) at every
// token boundary; and echo's call compressed with gzip.
func sweep(t *testing.T) []string {
	t.Helper()
	values := []string{
		"01", "1.", "-", "+1", ".1", "1e", "1E+", "0x1", "-0", "1.0e5", "00", "-01", "1e999",
		"123456789012345678901234567890", "nul", "nulll", "True", "tru", "NaN", "Infinity", "undefined", "'a'",
		`"\x00"`, "\"\x00\"", "\"\x7f\"", "\"\x1f\"", `"\u00"`, `"\U0041"`, `"\a"`, `"\'"`, "\"\xff\"", "\"\xed\xa0\x80\"",
		"[1,]", `{"a":1,}`, "[,1]", "{,}", `{"a" 1}`, `{"a":}`, "{a:1}", "[1 2]", `{"a":1 "b":2}`, "{1:1}",
		"\f1", "\v1", "1\f", "\x001", "\u00a01", "\ufeff1", "/*c*/1", "//c\n1",
		"[]", "{}", `""`, "null", "true", "false",
	}
	templates := []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"x":V}}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":V}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","x":V}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","_meta":V}}`,
		`{"jsonrpc":"2.0","id":1,"x":V,"method":"tools/call","params":{"name":"echo"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"},"x":V}`,
		`{"jsonrpc":"2.0","id":V,"method":"tools/call","params":{"name":"echo"}}`,
		`{"jsonrpc":V,"id":1,"method":"tools/call","params":{"name":"echo"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{V:1}}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{V:1,"name":"echo"}}`,
		`{V:1,"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}`,
		`[` + echoCall + `,V]`,
		`[V,` + echoCall + `]`,
		`V` + echoCall,
		echoCall + `V`,
	}
	bodies := []string{
		// Members named as on the path, off the path.
		`{"name":"whoami","jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","method":"tools/list","params":{"name":"whoami"}}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"name":"whoami","name":"x","Name":"y"}}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","_meta":{"name":"whoami","NAME":"x"}}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"arguments":{"params":{"name":"whoami"}},"name":"echo"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name\u0000":"whoami","name":"echo"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","name\u0000":"whoami"}}`,
		// The jsonrpc and id members, odd or repeated.
		`{"id":1,"method":"tools/call","params":{"name":"echo"}}`,
		`{"jsonrpc":"2.0 ","id":1,"method":"tools/call","params":{"name":"echo"}}`,
		`{"jsonrpc":2.0,"id":1,"method":"tools/call","params":{"name":"echo"}}`,
		`{"jsonrpc":"1.0","jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}`,
		`{"JSONRPC":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}`,
		`{"jsonrpc":"2.0","ID":1,"method":"tools/call","params":{"name":"echo"}}`,
		`{"jsonrpc":"2.0","id":1,"id":null,"method":"tools/call","params":{"name":"echo"}}`,
		`{"jsonrpc":"2.0","id":18446744073709551616,"method":"tools/call","params":{"name":"echo"}}`,
		`{"jsonrpc":"2.0","id":-9223372036854775809,"method":"tools/call","params":{"name":"echo"}}`,
		`{"jsonrpc":"2.0","id":"` + strings.Repeat("9", 4096) + `","method":"tools/call","params":{"name":"echo"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"},"result":{}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"},"error":{"code":1,"message":""}}`,
		// Batches: empty, nested, with odd elements.
		`[]`, `[[]]`, `[{}]`, `[` + echoCall + `]`, `[[` + echoCall + `]]`, `[[],` + echoCall + `]`,
		`[null,` + echoCall + `]`, `[` + echoCall + `,[` + echoCall + `]]`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":[` + echoCall + `]}`,
	}
	for _, tp := range templates {
		for _, v := range values {
			bodies = append(bodies, strings.Replace(tp, "V", v, 1))
		}
	}
	for _, space := range []string{" ", "\t", "\n", "\r", "\f", "\v", "\x00", "\u00a0", "\u0085", "\u2028", "\ufeff"} {
		bodies = append(bodies, space+echoCall, echoCall+space)
		for i := 1; i < len(echoCall); i++ {
			if strings.ContainsAny(echoCall[i-1:i+1], `{}:,[]`) {
				bodies = append(bodies, echoCall[:i]+space+echoCall[i:])
			}
		}
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, err := zw.Write([]byte(echoCall))
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return append(bodies, gz.String())
}

// TestPeekNeverStricterThanSDKs sends the sweep's bodies through the peek
// and both SDKs: whenever an SDK runs echo for a body the peek let
// through, the operation asks for echo's scopes; the peek never takes for
// invalid JSON a body that an SDK runs.
func TestPeekNeverStricterThanSDKs(t *testing.T) {
	peek := newPeek(t)
	ranBehind := 0 // bodies for which an SDK ran echo behind the peek
	for _, body := range sweep(t) {
		t.Run("", func(t *testing.T) {
			o := check(t, peek, []byte(body))
			for sdk, ran := range o.without {
				if slices.Contains(ran, "echo") && o.err == nil {
					assert.Subset(t, o.op.Scopes, needs("echo"), "%s runs echo for %q", sdk, body)
				}
			}
			for _, ran := range o.ran {
				if slices.Contains(ran, "echo") {
					ranBehind++
				}
			}
		})
	}
	assert.Greater(t, ranBehind, 200, "the SDKs run echo for many of the bodies: the sweep reaches them")
}

// unflushed hides the Flusher of a ResponseWriter, so that mcp-go answers
// a GET at once instead of holding a stream open.
type unflushed struct{ http.ResponseWriter }

// TestOnlyPOSTRunsTools checks the ground the peek stands on when it reads
// only POST bodies: neither SDK runs a tool for a request of any other
// method, whatever its body and headers (method override headers, which
// neither SDK reads, included), while the same body in a POST runs echo.
func TestOnlyPOSTRunsTools(t *testing.T) {
	peek := newPeek(t)
	override := http.Header{
		"X-Http-Method-Override": {"POST"},
		"X-Http-Method":          {"POST"},
		"X-Method-Override":      {"POST"},
	}
	for _, tc := range []struct {
		method string
		header http.Header
	}{
		{http.MethodPost, nil},
		{http.MethodPost, http.Header{"X-Http-Method-Override": {"GET"}}},
		{http.MethodGet, nil},
		{http.MethodGet, override},
		{http.MethodHead, override},
		{http.MethodPut, override},
		{http.MethodPatch, override},
		{http.MethodDelete, override},
		{http.MethodOptions, override},
		{"post", nil},
		{"Post", override},
		{"QUERY", override},
	} {
		for _, s := range sdks() {
			t.Run(s.name+"/"+tc.method, func(t *testing.T) {
				r := httptest.NewRequest(tc.method, "/mcp", strings.NewReader(echoCall))
				r.Header.Set("Content-Type", "application/json")
				r.Header.Set("Accept", "application/json, text/event-stream")
				for k, v := range tc.header {
					r.Header[k] = v
				}
				op, err := peek(r)
				require.NoError(t, err)
				s.log.take()
				s.handler.ServeHTTP(unflushed{httptest.NewRecorder()}, r)
				ran := s.log.take()
				if tc.method == http.MethodPost {
					assert.Equal(t, introspection.Operation{Name: `tool "echo"`, Scopes: needs("echo")}, op)
					assert.Equal(t, []string{"echo"}, ran, "the same body in a POST runs echo")
					return
				}
				assert.Equal(t, introspection.Operation{}, op, "the peek reads only POST bodies")
				assert.Empty(t, ran)
			})
		}
	}
}
