package introspection

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testMCPScopes is the mapping the peek's tests use: two tools with scopes
// of their own, a scope for every tool call and one for resources/read.
func testMCPScopes() MCPScopes {
	return MCPScopes{
		Tools: map[string][]string{
			"echo":  {"mcp:echo"},
			"admin": {"mcp:admin", "mcp:echo"},
		},
		Methods: map[string][]string{
			"tools/call":     {"mcp:call"},
			"resources/read": {"mcp:read"},
		},
	}
}

// The operations of testMCPScopes.
var (
	opEcho  = Operation{Name: `tool "echo"`, Scopes: []string{"mcp:call", "mcp:echo"}}
	opAdmin = Operation{Name: `tool "admin"`, Scopes: []string{"mcp:call", "mcp:admin", "mcp:echo"}}
	opCall  = Operation{Name: `method "tools/call"`, Scopes: []string{"mcp:call"}} // a tool without scopes of its own
	opRead  = Operation{Name: `method "resources/read"`, Scopes: []string{"mcp:read"}}
)

// rpc returns a JSON-RPC request with the given method and params.
func rpc(method, params string) string {
	return `{"jsonrpc":"2.0","id":1,"method":` + method + `,"params":` + params + `}`
}

// callTool returns a tools/call request for the tool named by the JSON
// string name.
func callTool(name string) string {
	return rpc(`"tools/call"`, `{"name":`+name+`,"arguments":{"text":"hi"}}`)
}

// newMCPOperation builds the OperationFunc for m, which must be valid.
func newMCPOperation(t testing.TB, m MCPScopes) OperationFunc {
	t.Helper()
	op, err := MCPOperation(m)
	require.NoError(t, err)
	require.NotNil(t, op)
	return op
}

// peekBody posts body through op and returns what op answered and the
// bytes the next handler reads.
func peekBody(t *testing.T, op OperationFunc, body string) (Operation, []byte, error) {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/mcp", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	got, err := op(r)
	rest, readErr := io.ReadAll(r.Body)
	require.NoError(t, readErr)
	return got, rest, err
}

// TestMCPOperationMapsRequestsToScopes checks that a tools/call needs the
// scopes of tools/call and of its tool, another method those of its own,
// and that an unknown tool or method needs nothing of its own; names and
// strings are read as decoded, and only params.name names the tool.
func TestMCPOperationMapsRequestsToScopes(t *testing.T) {
	op := newMCPOperation(t, testMCPScopes())
	tests := []struct {
		name string
		body string
		want Operation
	}{
		{"tool with a scope", callTool(`"echo"`), opEcho},
		{"tool with two scopes", callTool(`"admin"`), opAdmin},
		{"tool without scopes of its own", callTool(`"whoami"`), opCall},
		{"method with scopes", rpc(`"resources/read"`, `{"uri":"file:///a"}`), opRead},
		{"method without scopes", rpc(`"initialize"`, `{"protocolVersion":"2025-06-18"}`), Operation{}},
		{"notification", `{"jsonrpc":"2.0","method":"notifications/initialized"}`, Operation{}},
		{"response from the client", `{"jsonrpc":"2.0","id":7,"result":{}}`, Operation{}},
		{"params before method", `{"params":{"arguments":{},"name":"echo"},"id":1,"method":"tools/call","jsonrpc":"2.0"}`, opEcho},
		{"tool name with escapes", callTool(`"\u0065cho"`), opEcho},
		{"tool name escaped throughout", callTool(`"\u0065\u0063\u0068\u006F"`), opEcho},
		{"method with escapes", rpc(`"tools\/call"`, `{"name":"echo"}`), opEcho},
		{"member names with escapes", `{"jsonrpc":"2.0","id":1,"m\u0065thod":"tools/call","p\u0061rams":{"n\u0061me":"echo"}}`, opEcho},
		{"name inside arguments is not the tool", rpc(`"tools/call"`, `{"arguments":{"name":"echo"},"name":"whoami"}`), opCall},
		{"name inside _meta is not the tool", rpc(`"tools/call"`, `{"name":"whoami","_meta":{"name":"echo"}}`), opCall},
		{"params elsewhere are not the params", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami"},"x":{"params":{"name":"echo"}}}`, opCall},
		{"method inside params is not the method", rpc(`"resources/read"`, `{"method":"tools/call","name":"echo"}`), opRead},
		{"repeated names below params are the tool's business", rpc(`"tools/call"`, `{"name":"echo","arguments":{"name":1,"name":2,"Name":3}}`), opEcho},
		{"case variants of other members", `{"JSONRPC":"2.0","ID":1,"method":"tools/call","params":{"name":"echo","Arguments":{}}}`, opEcho},
		{"surrogate pair in a tool name", callTool(`"echo\ud83d\ude00"`), opCall},
		{"invalid UTF-8 where it does not matter", rpc(`"tools/call"`, "{\"name\":\"echo\",\"arguments\":{\"t\":\"\xff\xfe\"}}"), opEcho},
		{"lone surrogate where it does not matter", rpc(`"tools/call"`, `{"name":"echo","arguments":{"t":"\ud800"}}`), opEcho},
		{"params of another method that would not be read as a tool call", rpc(`"resources/read"`, `{"uri":"x","NAME":"echo","name":"a","name":"b"}`), opRead},
		{"params of another method that is not an object", rpc(`"resources/read"`, `"x"`), opRead},
		{"tool name that is not a tool name", callTool(`"echo\" needs nothing"`), opCall},
		{"white space around the value", " \t\r\n" + callTool(`"echo"`) + " \t\r\n", opEcho},
		{"a value that is not a request", `"tools/call"`, Operation{}},
		{"a number", `1`, Operation{}},
		{"null", `null`, Operation{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, rest, err := peekBody(t, op, tc.body)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
			assert.Equal(t, tc.body, string(rest), "the next handler reads the body as it came")
		})
	}
}

// TestMCPOperationRefusesNamesThatFold checks that a member on the path to
// the method or the tool whose name encoding/json would take for method,
// params or name (ASCII case, U+017F for s, U+212A for k), but that is not
// that name exactly, is refused, and so is any of these members twice.
func TestMCPOperationRefusesNamesThatFold(t *testing.T) {
	op := newMCPOperation(t, testMCPScopes())
	tests := []struct {
		name string
		body string
	}{
		{"Method", `{"jsonrpc":"2.0","id":1,"Method":"tools/call","params":{"name":"echo"}}`},
		{"METHOD beside method", `{"jsonrpc":"2.0","id":1,"method":"tools/list","METHOD":"tools/call","params":{"name":"echo"}}`},
		{"mEtHoD before method", `{"jsonrpc":"2.0","id":1,"mEtHoD":"tools/call","method":"tools/list"}`},
		{"Params", `{"jsonrpc":"2.0","id":1,"method":"tools/call","Params":{"name":"echo"}}`},
		{"params with U+017F", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"whoami\"},\"param\u017f\":{\"name\":\"echo\"}}"},
		{"params with U+017F escaped", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami"},"PARAM\u017F":{"name":"echo"}}`},
		{"Name", rpc(`"tools/call"`, `{"Name":"echo"}`)},
		{"NAME after name", rpc(`"tools/call"`, `{"name":"whoami","NAME":"echo"}`)},
		{"nAme before name", rpc(`"tools/call"`, `{"nAme":"echo","name":"whoami"}`)},
		{"nAME escaped", rpc(`"tools/call"`, `{"name":"whoami","\u006EAME":"echo"}`)},
		{"method twice", `{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call","params":{"name":"echo"}}`},
		{"method twice with the same value", `{"jsonrpc":"2.0","id":1,"method":"tools/call","method":"tools/call","params":{"name":"echo"}}`},
		{"method twice, once escaped", `{"jsonrpc":"2.0","id":1,"method":"tools/list","m\u0065thod":"tools/call","params":{"name":"echo"}}`},
		{"params twice", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami"},"params":{"name":"echo"}}`},
		{"params twice, once not an object", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"},"params":null}`},
		{"name twice", rpc(`"tools/call"`, `{"name":"whoami","name":"echo"}`)},
		{"name twice, once null", rpc(`"tools/call"`, `{"name":"echo","name":null}`)},
		{"name twice, once escaped", rpc(`"tools/call"`, `{"name":"whoami","n\u0061me":"echo"}`)},
		{"in a batch", `[` + callTool(`"echo"`) + `,` + rpc(`"tools/call"`, `{"name":"whoami","Name":"echo"}`) + `]`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, _, err := peekBody(t, op, tc.body)
			require.Error(t, err)
			assert.NotErrorIs(t, err, ErrRequestTooLarge)
			assert.True(t, strings.HasPrefix(err.Error(), "introspection: "), err.Error())
			assert.Equal(t, Operation{}, got)
		})
	}
}

// TestMemberNameFoldsAsEncodingJSON checks the peek's folding of member
// names against encoding/json itself: a name is refused exactly when
// encoding/json would decode it into the field of another name, U+212A and
// U+017F included.
func TestMemberNameFoldsAsEncodingJSON(t *testing.T) {
	type fields struct {
		Method string `json:"method"`
		Params string `json:"params"`
		Name   string `json:"name"`
		Kiss   string `json:"kiss"` // a name with k and s, for U+212A and U+017F
	}
	for _, key := range []string{
		"method", "Method", "METHOD", "mEtHoD", "methoD", "method ", " method", "methods", "metho", "meth\u00f6d",
		"params", "Params", "PARAMS", "param\u017f", "PARAM\u017f", "paramS", "param\u0455", "params\u0000",
		"name", "Name", "NAME", "nAme", "naMe", "n\u0430me", "\u212aname", "name\u0000",
		"kiss", "KISS", "\u212aiss", "ki\u017f\u017f", "\u212aI\u017fS", "k\u0131ss", "k\u0130ss",
	} {
		t.Run(strconv.QuoteToASCII(key), func(t *testing.T) {
			body, err := json.Marshal(map[string]string{key: "x"})
			require.NoError(t, err)
			var f fields
			require.NoError(t, json.Unmarshal(body, &f))
			target := ""
			switch {
			case f.Method != "":
				target = "method"
			case f.Params != "":
				target = "params"
			case f.Name != "":
				target = "name"
			case f.Kiss != "":
				target = "kiss"
			}
			for _, name := range []string{"method", "params", "name", "kiss"} {
				assert.Equal(t, target == name && key != name, foldsTo([]byte(key), name),
					"encoding/json decodes %q into %q: %v", key, name, target == name)
			}
		})
	}
}

// TestMCPOperationRefusesUnreadableStrings checks that the method, the
// tool's name and the member names on the path to them are refused when
// they hold invalid UTF-8 or a lone surrogate, which both SDKs read as
// U+FFFD, and that a method or tool name that is not a string, or a tool
// call without a params object naming its tool, is refused.
func TestMCPOperationRefusesUnreadableStrings(t *testing.T) {
	op := newMCPOperation(t, testMCPScopes())
	tests := []struct {
		name string
		body string
	}{
		{"invalid UTF-8 in the method", rpc("\"tools/call\xff\"", `{"name":"echo"}`)},
		{"invalid UTF-8 in the tool name", callTool("\"echo\xff\"")},
		{"overlong UTF-8 in the tool name", callTool("\"ech\xc1\xaf\"")},
		{"invalid UTF-8 in a member name", "{\"jsonrpc\":\"2.0\",\"id\":1,\"\xffmethod\":\"x\",\"method\":\"tools/call\",\"params\":{\"name\":\"echo\"}}"},
		{"invalid UTF-8 in a member name of params", rpc(`"tools/call"`, "{\"name\":\"echo\",\"\xfe\":1}")},
		{"lone high surrogate in the tool name", callTool(`"echo\ud800"`)},
		{"lone low surrogate in the tool name", callTool(`"\udc00echo"`)},
		{"high surrogate before a letter", callTool(`"\ud800\u0065cho"`)},
		{"surrogates in the wrong order", callTool(`"echo\udc00\ud800"`)},
		{"two low surrogates", callTool(`"echo\udc00\udc01"`)},
		{"two high surrogates", callTool(`"echo\ud800\ud801"`)},
		{"lone surrogate in the method", rpc(`"tools/call\udfff"`, `{"name":"echo"}`)},
		{"lone surrogate in a member name", `{"jsonrpc":"2.0","id":1,"method":"tools/call","\ud800":1,"params":{"name":"echo"}}`},
		{"method a number", rpc(`1`, `{"name":"echo"}`)},
		{"method null", rpc(`null`, `{"name":"echo"}`)},
		{"method an array", rpc(`["tools/call"]`, `{"name":"echo"}`)},
		{"method an object", rpc(`{}`, `{"name":"echo"}`)},
		{"tool name a number", callTool(`1`)},
		{"tool name null", callTool(`null`)},
		{"tool name an array", callTool(`["echo"]`)},
		{"tools/call without params", `{"jsonrpc":"2.0","id":1,"method":"tools/call"}`},
		{"tools/call with params null", rpc(`"tools/call"`, `null`)},
		{"tools/call with params an array", rpc(`"tools/call"`, `[{"name":"echo"}]`)},
		{"tools/call with params a string", rpc(`"tools/call"`, `"{\"name\":\"echo\"}"`)},
		{"tools/call without a name", rpc(`"tools/call"`, `{"arguments":{"name":"echo"}}`)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, _, err := peekBody(t, op, tc.body)
			require.Error(t, err)
			assert.NotErrorIs(t, err, ErrRequestTooLarge)
			assert.Equal(t, Operation{}, got)
		})
	}
}

// TestMCPOperationRefusesTrailingData checks that anything but white space
// after a first value that is an object or an array is refused: the go-sdk
// runs the first value and ignores the rest.
func TestMCPOperationRefusesTrailingData(t *testing.T) {
	op := newMCPOperation(t, testMCPScopes())
	echo := callTool(`"echo"`)
	for _, tc := range []struct {
		name string
		body string
	}{
		{"a second request", callTool(`"whoami"`) + echo},
		{"a second request after a newline", echo + "\n" + callTool(`"whoami"`)},
		{"garbage", echo + "x"},
		{"a closing bracket", echo + "]"},
		{"a brace", echo + "}"},
		{"a NUL byte", echo + "\x00"},
		{"after a batch", "[" + echo + "] 1"},
		{"after a request of no scopes", rpc(`"initialize"`, `{}`) + echo},
		{"after a syntax error in the rest", echo + `{"method":`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _, err := peekBody(t, op, tc.body)
			require.Error(t, err)
			assert.Equal(t, Operation{}, got)
		})
	}
}

// nested returns depth arrays, one inside the other.
func nested(depth int) string {
	return strings.Repeat("[", depth) + strings.Repeat("]", depth)
}

// TestMCPOperationBoundsNesting checks that a body nested as deep as
// maxJSONDepth is read, and one level deeper is refused, inside a request
// and inside a batch, and in a body that is not JSON at all.
func TestMCPOperationBoundsNesting(t *testing.T) {
	op := newMCPOperation(t, testMCPScopes())
	// The request is depth 1, params 2, arguments 3.
	deep := func(depth int) string {
		return rpc(`"tools/call"`, `{"name":"echo","arguments":{"a":`+nested(depth-3)+`}}`)
	}
	for _, tc := range []struct {
		name string
		body string
		ok   bool
	}{
		{"request at the bound", deep(maxJSONDepth), true},
		{"request past the bound", deep(maxJSONDepth + 1), false},
		{"batch at the bound", "[" + deep(maxJSONDepth-1) + "]", true},
		{"batch past the bound", "[" + deep(maxJSONDepth) + "]", false},
		{"arrays past the bound", nested(maxJSONDepth + 1), false},
		{"objects past the bound", strings.Repeat(`{"a":`, maxJSONDepth+1) + "1" + strings.Repeat("}", maxJSONDepth+1), false},
		{"unclosed arrays past the bound", strings.Repeat("[", maxJSONDepth+1), false},
		{"far past the bound", strings.Repeat("[", 100000), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _, err := peekBody(t, op, tc.body)
			if tc.ok {
				require.NoError(t, err)
				assert.Equal(t, opEcho, got)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), "nested deeper than "+strconv.Itoa(maxJSONDepth))
			assert.Equal(t, Operation{}, got)
		})
	}
}

// TestMCPOperationBatchNeedsEveryRequestsScopes checks that a JSON-RPC
// batch needs the union of its requests' scopes, in the order they come,
// and is named by the list of its operations, each once.
func TestMCPOperationBatchNeedsEveryRequestsScopes(t *testing.T) {
	op := newMCPOperation(t, testMCPScopes())
	for _, tc := range []struct {
		name string
		body string
		want Operation
	}{
		{"one tool", "[" + callTool(`"echo"`) + "]", opEcho},
		{"tools and methods", "[" + rpc(`"resources/read"`, `{"uri":"x"}`) + "," + callTool(`"echo"`) + "," + rpc(`"initialize"`, `{}`) + "," + callTool(`"whoami"`) + "," + callTool(`"admin"`) + "," + callTool(`"echo"`) + "]",
			Operation{
				Name:   `method "resources/read", tool "echo", method "tools/call", tool "admin"`,
				Scopes: []string{"mcp:read", "mcp:call", "mcp:echo", "mcp:admin"},
			}},
		{"a tool after a response", `[{"jsonrpc":"2.0","id":3,"result":{}},` + callTool(`"admin"`) + `]`, opAdmin},
		{"only requests without scopes", "[" + rpc(`"initialize"`, `{}`) + `,{"jsonrpc":"2.0","method":"notifications/initialized"}]`, Operation{}},
		{"elements that are not requests", `[1,"x",null,[` + callTool(`"echo"`) + `],` + callTool(`"whoami"`) + `]`, opCall},
		{"empty", `[]`, Operation{}},
		{"white space", " [ " + callTool(`"echo"`) + " , " + callTool(`"admin"`) + " ] ",
			Operation{Name: `tool "echo", tool "admin"`, Scopes: []string{"mcp:call", "mcp:echo", "mcp:admin"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, rest, err := peekBody(t, op, tc.body)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
			assert.Equal(t, tc.body, string(rest))
		})
	}
}

// TestMCPOperationPassesInvalidJSON checks that a body whose first value
// is not JSON gets a zero Operation and reaches the SDK as it came, for
// the SDK to answer with a parse error, even where the part before the
// error would be refused.
func TestMCPOperationPassesInvalidJSON(t *testing.T) {
	op := newMCPOperation(t, testMCPScopes())
	echo := callTool(`"echo"`)
	for _, tc := range []struct {
		name string
		body string
	}{
		{"empty", ""},
		{"white space", " \r\n\t"},
		{"cut short", echo[:len(echo)-1]},
		{"cut in a string", echo[:40]},
		{"trailing comma in an object", strings.TrimSuffix(echo, "}") + ",}"},
		{"trailing comma in a batch", "[" + echo + ",]"},
		{"missing comma", `{"method":"tools/call" "params":{"name":"echo"}}`},
		{"missing colon", `{"method" "tools/call","params":{"name":"echo"}}`},
		{"single quotes", `{'method':'tools/call','params':{'name':'echo'}}`},
		{"byte order mark", "\xef\xbb\xbf" + echo},
		{"leading zero", `{"id":01,"method":"tools/call","params":{"name":"echo"}}`},
		{"bare decimal point", `{"id":1.,"method":"tools/call","params":{"name":"echo"}}`},
		{"plus sign", `{"id":+1,"method":"tools/call","params":{"name":"echo"}}`},
		{"bare minus", `{"id":-,"method":"tools/call","params":{"name":"echo"}}`},
		{"empty exponent", `{"id":1e,"method":"tools/call","params":{"name":"echo"}}`},
		{"misspelt literal", `{"id":nul,"method":"tools/call","params":{"name":"echo"}}`},
		{"literal in capitals", `{"id":True,"method":"tools/call","params":{"name":"echo"}}`},
		{"control character in a string", "{\"method\":\"tools/call\",\"params\":{\"name\":\"echo\",\"a\":\"\x01\"}}"},
		{"unknown escape", `{"method":"tools/call","params":{"name":"echo","a":"\x"}}`},
		{"short unicode escape", `{"method":"tools/call","params":{"name":"echo","a":"\u12"}}`},
		{"bad hex", `{"method":"tools/call","params":{"name":"echo","a":"\u12g4"}}`},
		{"key that is not a string", `{method:"tools/call","params":{"name":"echo"}}`},
		{"refused name before the error", `{"Method":"tools/call","params":{"name":"echo"},}`},
		{"duplicate before the error", `{"method":"tools/call","method":"tools/call","params":{"name":"echo"}`},
		{"non-breaking space", "\u00a0" + echo},
		{"comment", "/**/" + echo},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.False(t, json.Valid([]byte(tc.body)), "encoding/json refuses the body")
			got, rest, err := peekBody(t, op, tc.body)
			require.NoError(t, err)
			assert.Equal(t, Operation{}, got)
			assert.Equal(t, tc.body, string(rest))
		})
	}
}

// untouchableBody fails the test if it is read or closed.
type untouchableBody struct{ t *testing.T }

func (b untouchableBody) Read([]byte) (int, error) {
	b.t.Error("the body was read")
	return 0, io.EOF
}

func (b untouchableBody) Close() error {
	b.t.Error("the body was closed")
	return nil
}

// TestMCPOperationReadsOnlyPOST checks that a request of any other method
// gets a zero Operation without its body being touched.
func TestMCPOperationReadsOnlyPOST(t *testing.T) {
	op := newMCPOperation(t, testMCPScopes())
	for _, method := range []string{http.MethodGet, http.MethodDelete, http.MethodHead, http.MethodPut, http.MethodPatch, http.MethodOptions, "post"} {
		t.Run(method, func(t *testing.T) {
			r := httptest.NewRequest(method, "/mcp", nil)
			body := untouchableBody{t}
			r.Body = body
			got, err := op(r)
			require.NoError(t, err)
			assert.Equal(t, Operation{}, got)
			assert.Equal(t, body, r.Body)
		})
	}
	t.Run("POST without a body", func(t *testing.T) {
		r := httptest.NewRequest(http.MethodPost, "/mcp", nil)
		r.Body = nil
		got, err := op(r)
		require.NoError(t, err)
		assert.Equal(t, Operation{}, got)
		assert.Nil(t, r.Body)
	})
}

// TestMCPOperationRestoresBody checks that the next handler reads exactly
// the bytes that came, whatever the size of the body and of the reads,
// and whether or not the request said how long its body is, from a body
// that reads as an io.Reader must (iotest.TestReader).
func TestMCPOperationRestoresBody(t *testing.T) {
	op := newMCPOperation(t, testMCPScopes())
	echo := callTool(`"echo"`)
	long := rpc(`"tools/call"`, `{"name":"echo","arguments":{"text":"`+strings.Repeat("0123456789", 20000)+`"}}`)
	for _, tc := range []struct {
		name   string
		body   string
		length int64 // ContentLength; -1 for unknown
		wrap   func(io.Reader) io.Reader
		want   Operation
	}{
		{"known length", echo, int64(len(echo)), nil, opEcho},
		{"unknown length", echo, -1, nil, opEcho},
		{"one byte a read", echo, int64(len(echo)), iotest.OneByteReader, opEcho},
		{"one byte a read, unknown length", echo, -1, iotest.OneByteReader, opEcho},
		{"half of each read", long, int64(len(long)), iotest.HalfReader, opEcho},
		{"long, unknown length", long, -1, iotest.HalfReader, opEcho},
		{"data with EOF", echo, int64(len(echo)), iotest.DataErrReader, opEcho},
		{"longer than its stated length", echo, 10, nil, opEcho},
		{"shorter than its stated length", echo, int64(len(echo) + 10), nil, opEcho},
		{"invalid JSON", echo[:50], int64(50), iotest.OneByteReader, Operation{}},
		{"empty", "", 0, nil, Operation{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader = strings.NewReader(tc.body)
			if tc.wrap != nil {
				body = tc.wrap(body)
			}
			r := httptest.NewRequest(http.MethodPost, "/mcp", body)
			r.ContentLength = tc.length
			got, err := op(r)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
			assert.NoError(t, iotest.TestReader(r.Body, []byte(tc.body)), "the next handler reads the %d bytes that came", len(tc.body))
			assert.NoError(t, r.Body.Close())
		})
	}
}

// padBody returns a call of echo padded with white space to size bytes.
func padBody(size int) string {
	echo := callTool(`"echo"`)
	return echo + strings.Repeat(" ", size-len(echo))
}

// inlineRooms returns the sizes of the buffers that bodies of up to
// maxInlineBody bytes are read into, smallest first.
func inlineRooms() []int {
	var rooms []int
	for room := 1; room <= maxInlineBody+1; room++ {
		if body, rest, buf := newInlineBody(room); body != nil && rest != nil && (len(rooms) == 0 || len(buf) != rooms[len(rooms)-1]) {
			rooms = append(rooms, len(buf))
		}
	}
	return rooms
}

// TestMCPOperationRestoresBodyAroundBufferSizes checks that bodies of
// every size around those of the buffers the peek reads into, and around
// maxInlineBody, reach the next handler byte for byte, whether their
// stated length is right, unknown, too short or too long, and however the
// reads come; and that MaxBodySize holds there, at and just past it.
func TestMCPOperationRestoresBodyAroundBufferSizes(t *testing.T) {
	rooms := inlineRooms()
	require.GreaterOrEqual(t, len(rooms), 2, "bodies are read into buffers of several sizes")
	require.Equal(t, maxInlineBody+1, rooms[len(rooms)-1], "the largest holds maxInlineBody bytes and the read that finds the end")
	var sizes []int
	for _, room := range rooms {
		sizes = append(sizes, room-2, room-1, room, room+1)
	}
	op := newMCPOperation(t, testMCPScopes())
	wraps := map[string]func(io.Reader) io.Reader{
		"whole reads":     func(r io.Reader) io.Reader { return r },
		"one byte a read": iotest.OneByteReader,
		"half of each":    iotest.HalfReader,
		"data with EOF":   iotest.DataErrReader,
	}
	lengths := map[string]func(size int) int64{
		"known":       func(size int) int64 { return int64(size) },
		"unknown":     func(int) int64 { return -1 },
		"understated": func(size int) int64 { return int64(size / 2) },
		"overstated":  func(size int) int64 { return int64(size + 5) },
	}
	for _, size := range sizes {
		body := padBody(size)
		for lname, length := range lengths {
			for wname, wrap := range wraps {
				r := httptest.NewRequest(http.MethodPost, "/mcp", wrap(strings.NewReader(body)))
				r.ContentLength = length(size)
				got, err := op(r)
				require.NoError(t, err, "%d bytes, %s length, %s", size, lname, wname)
				assert.Equal(t, opEcho, got, "%d bytes, %s length, %s", size, lname, wname)
				assert.NoError(t, iotest.TestReader(r.Body, []byte(body)), "%d bytes, %s length, %s", size, lname, wname)
				assert.NoError(t, r.Body.Close())
			}
		}
	}
	for _, bound := range sizes {
		m := testMCPScopes()
		m.MaxBodySize = int64(bound)
		op := newMCPOperation(t, m)
		for _, size := range []int{bound, bound + 1} {
			body := padBody(size)
			for lname, length := range lengths {
				r := httptest.NewRequest(http.MethodPost, "/mcp", iotest.HalfReader(strings.NewReader(body)))
				r.ContentLength = length(size)
				got, err := op(r)
				if size > bound || r.ContentLength > int64(bound) {
					require.ErrorIs(t, err, ErrRequestTooLarge, "%d bytes over %d, %s length", size, bound, lname)
					assert.Equal(t, Operation{}, got)
					continue
				}
				require.NoError(t, err, "%d bytes at %d, %s length", size, bound, lname)
				assert.Equal(t, opEcho, got)
				rest, err := io.ReadAll(r.Body)
				require.NoError(t, err)
				assert.True(t, body == string(rest), "%d bytes at %d, %s length", size, bound, lname)
			}
		}
	}
}

// resetReader fails every read, as a body does whose connection broke.
type resetReader struct{}

func (resetReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

// TestMCPOperationBoundsBodySize checks that a body of MaxBodySize bytes is
// read and one byte more is refused with ErrRequestTooLarge, whether or
// not the request states its length, that zero means
// DefaultMCPMaxBodySize, and that a body cut short by http.MaxBytesReader
// is too large as well, while another read error is not.
func TestMCPOperationBoundsBodySize(t *testing.T) {
	small := testMCPScopes()
	small.MaxBodySize = 1000
	for _, tc := range []struct {
		name  string
		m     MCPScopes
		size  int
		known bool
		ok    bool
	}{
		{"at the bound", small, 1000, true, true},
		{"at the bound, unknown length", small, 1000, false, true},
		{"past the bound", small, 1001, true, false},
		{"past the bound, unknown length", small, 1001, false, false},
		{"far past the bound, unknown length", small, 100000, false, false},
		{"at the default bound", testMCPScopes(), DefaultMCPMaxBodySize, true, true},
		{"at the default bound, unknown length", testMCPScopes(), DefaultMCPMaxBodySize, false, true},
		{"past the default bound", testMCPScopes(), DefaultMCPMaxBodySize + 1, true, false},
		{"past the default bound, unknown length", testMCPScopes(), DefaultMCPMaxBodySize + 1, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			op := newMCPOperation(t, tc.m)
			body := padBody(tc.size)
			r := httptest.NewRequest(http.MethodPost, "/mcp", iotest.HalfReader(strings.NewReader(body)))
			if tc.known {
				r.ContentLength = int64(len(body))
			} else {
				r.ContentLength = -1
			}
			got, err := op(r)
			if tc.ok {
				require.NoError(t, err)
				assert.Equal(t, opEcho, got)
				rest, err := io.ReadAll(r.Body)
				require.NoError(t, err)
				assert.True(t, body == string(rest))
				return
			}
			require.ErrorIs(t, err, ErrRequestTooLarge)
			assert.Equal(t, Operation{}, got)
		})
	}
	t.Run("stated length past the bound is refused unread", func(t *testing.T) {
		op := newMCPOperation(t, small)
		r := httptest.NewRequest(http.MethodPost, "/mcp", nil)
		r.Body = untouchableBody{t}
		r.ContentLength = 1001
		_, err := op(r)
		require.ErrorIs(t, err, ErrRequestTooLarge)
	})
	t.Run("stated length sets aside at most maxInitialBodyBuffer", func(t *testing.T) {
		op := newMCPOperation(t, testMCPScopes())
		body := padBody(DefaultMCPMaxBodySize)
		src := strings.NewReader(body)
		var largest int
		r := httptest.NewRequest(http.MethodPost, "/mcp", readFunc(func(p []byte) (int, error) {
			largest = max(largest, len(p))
			if src.Len() == len(body) {
				assert.LessOrEqual(t, len(p), maxInitialBodyBuffer, "the first read")
			}
			return src.Read(p)
		}))
		r.ContentLength = int64(len(body))
		got, err := op(r)
		require.NoError(t, err)
		assert.Equal(t, opEcho, got)
		assert.Greater(t, largest, maxInitialBodyBuffer, "the buffer grows as the body comes")
	})
	t.Run("http.MaxBytesReader", func(t *testing.T) {
		op := newMCPOperation(t, testMCPScopes())
		body := padBody(200)
		r := httptest.NewRequest(http.MethodPost, "/mcp", strings.NewReader(body))
		r.Body = http.MaxBytesReader(httptest.NewRecorder(), r.Body, 100)
		_, err := op(r)
		require.ErrorIs(t, err, ErrRequestTooLarge)
		var mbe *http.MaxBytesError
		assert.ErrorAs(t, err, &mbe)
	})
	t.Run("read error", func(t *testing.T) {
		op := newMCPOperation(t, testMCPScopes())
		r := httptest.NewRequest(http.MethodPost, "/mcp", resetReader{})
		r.ContentLength = -1
		_, err := op(r)
		require.Error(t, err)
		assert.NotErrorIs(t, err, ErrRequestTooLarge)
		assert.True(t, strings.HasPrefix(err.Error(), "introspection: "), err.Error())
	})
}

// TestMCPOperationFindsEveryToolAndMethod checks that, among many tools and
// methods whose names share their length, their first and their last
// bytes or all but one byte, each call is mapped to its own tool's or
// method's scopes, and a name that is not in the mapping, however close to
// one that is, or longer than any name can be, to none of its own.
func TestMCPOperationFindsEveryToolAndMethod(t *testing.T) {
	methodOf := func(name string) string { return "m/" + name[max(0, len(name)-(maxMCPName-2)):] }
	var names []string
	for i := range 40 {
		digits := strconv.Itoa(1000 + i)
		names = append(names,
			"t"+digits,               // short, alike but for one byte
			"tool_"+digits+"_suffix", // alike in the first and last eight bytes
			strings.Repeat("a", 60)+digits+strings.Repeat("z", 60), // differ only in the middle
			strings.Repeat("b", maxMCPName-4)+digits,               // as long as a name can be
			string(rune('a'+i%26))+"-"+string(rune('A'+i/26)),      // three bytes
		)
	}
	m := MCPScopes{Tools: map[string][]string{}, Methods: map[string][]string{}}
	for i, name := range names {
		m.Tools[name] = []string{"tool" + strconv.Itoa(i)}
		m.Methods[methodOf(name)] = []string{"method" + strconv.Itoa(i)}
	}
	op := newMCPOperation(t, m)
	for i, name := range names {
		got, _, err := peekBody(t, op, callTool(`"`+name+`"`))
		require.NoError(t, err)
		assert.Equal(t, Operation{Name: `tool "` + name + `"`, Scopes: []string{"tool" + strconv.Itoa(i)}}, got)
		method := methodOf(name)
		got, _, err = peekBody(t, op, rpc(`"`+method+`"`, `{}`))
		require.NoError(t, err)
		assert.Equal(t, Operation{Name: `method "` + method + `"`, Scopes: []string{"method" + strconv.Itoa(i)}}, got)
	}
	anyTool := Operation{Name: `method "tools/call"`}
	for _, name := range []string{"t999", "t10000", "T1000", "tool_1000_suffi", "tool_1000_suffix_", strings.Repeat("b", maxMCPName-4) + "1000x", "a-a", "a-", "x", "1"} {
		got, _, err := peekBody(t, op, callTool(`"`+name+`"`))
		require.NoError(t, err)
		assert.Equal(t, anyTool, got, name)
		got, _, err = peekBody(t, op, rpc(`"m/`+name+`"`, `{}`))
		require.NoError(t, err)
		assert.Equal(t, Operation{}, got, name)
	}
}

// TestMCPOperationValidatesMapping checks that MCPOperation refuses a scope
// that is not an RFC 6749 §3.3 scope-token, offline_access, a tool name
// the MCP spec does not allow, an unusable method name and a negative
// MaxBodySize, and that it copies the mapping.
func TestMCPOperationValidatesMapping(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    MCPScopes
		want string
	}{
		{"empty scope", MCPScopes{Tools: map[string][]string{"echo": {""}}}, `invalid scope ""`},
		{"scope with a space", MCPScopes{Tools: map[string][]string{"echo": {"a b"}}}, `invalid scope "a b"`},
		{"scope with a quote", MCPScopes{Methods: map[string][]string{"x": {`a"b`}}}, `invalid scope "a\"b"`},
		{"scope with a backslash", MCPScopes{Methods: map[string][]string{"x": {`a\b`}}}, `invalid scope "a\\b"`},
		{"scope with a control character", MCPScopes{Tools: map[string][]string{"echo": {"a\tb"}}}, `invalid scope "a\tb"`},
		{"scope with DEL", MCPScopes{Tools: map[string][]string{"echo": {"a\x7f"}}}, `invalid scope "a\x7f"`},
		{"scope not ASCII", MCPScopes{Tools: map[string][]string{"echo": {"\u00e9"}}}, `invalid scope "\u00e9"`},
		{"offline_access for a tool", MCPScopes{Tools: map[string][]string{"echo": {"offline_access"}}}, "offline_access"},
		{"offline_access for a method", MCPScopes{Methods: map[string][]string{"tools/call": {"mcp", "offline_access"}}}, "offline_access"},
		{"empty tool name", MCPScopes{Tools: map[string][]string{"": {"a"}}}, `invalid tool name ""`},
		{"tool name too long", MCPScopes{Tools: map[string][]string{strings.Repeat("a", 129): {"a"}}}, "invalid tool name"},
		{"tool name with a slash", MCPScopes{Tools: map[string][]string{"a/b": {"a"}}}, `invalid tool name "a/b"`},
		{"tool name with a space", MCPScopes{Tools: map[string][]string{"a b": {"a"}}}, `invalid tool name "a b"`},
		{"tool name with a quote", MCPScopes{Tools: map[string][]string{`a"`: {"a"}}}, `invalid tool name "a\""`},
		{"tool name not ASCII", MCPScopes{Tools: map[string][]string{"\u00e9cho": {"a"}}}, "invalid tool name"},
		{"empty method", MCPScopes{Methods: map[string][]string{"": {"a"}}}, `invalid method ""`},
		{"method with a quote", MCPScopes{Methods: map[string][]string{`a"b`: {"a"}}}, `invalid method "a\"b"`},
		{"method with a space", MCPScopes{Methods: map[string][]string{"a b": {"a"}}}, `invalid method "a b"`},
		{"method too long", MCPScopes{Methods: map[string][]string{strings.Repeat("a", 129): {"a"}}}, "invalid method"},
		{"negative MaxBodySize", MCPScopes{MaxBodySize: -1}, "MaxBodySize"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			op, err := MCPOperation(tc.m)
			require.Error(t, err)
			assert.Nil(t, op)
			assert.True(t, strings.HasPrefix(err.Error(), "introspection: "), err.Error())
			assert.Contains(t, err.Error(), tc.want)
		})
	}
	t.Run("valid at the bounds", func(t *testing.T) {
		long := strings.Repeat("a", 128)
		op := newMCPOperation(t, MCPScopes{
			Tools:   map[string][]string{long: {"!#[]~"}, "A-Z_a.z-0_9": nil},
			Methods: map[string][]string{long: {"x"}},
		})
		got, _, err := peekBody(t, op, callTool(`"`+long+`"`))
		require.NoError(t, err)
		assert.Equal(t, Operation{Name: `tool "` + long + `"`, Scopes: []string{"!#[]~"}}, got)
	})
	t.Run("the mapping is copied", func(t *testing.T) {
		m := testMCPScopes()
		op := newMCPOperation(t, m)
		m.Tools["echo"][0] = "changed"
		m.Tools["whoami"] = []string{"changed"}
		m.Methods["tools/call"] = nil
		delete(m.Methods, "resources/read")
		for body, want := range map[string]Operation{
			callTool(`"echo"`):               opEcho,
			callTool(`"whoami"`):             opCall,
			rpc(`"resources/read"`, `{}`):    opRead,
			"[" + callTool(`"admin"`) + "]":  opAdmin,
			rpc(`"initialize"`, `{"a":"b"}`): {},
			`{"jsonrpc":"2.0","method":"x"}`: {},
		} {
			got, _, err := peekBody(t, op, body)
			require.NoError(t, err)
			assert.Equal(t, want, got, body)
		}
	})
	t.Run("an operation's scopes are the caller's to append to", func(t *testing.T) {
		op := newMCPOperation(t, testMCPScopes())
		first, _, err := peekBody(t, op, callTool(`"admin"`))
		require.NoError(t, err)
		mine := append(first.Scopes, "mine")
		second, _, err := peekBody(t, op, callTool(`"admin"`))
		require.NoError(t, err)
		theirs := append(second.Scopes, "theirs")
		assert.Equal(t, append(slices.Clone(opAdmin.Scopes), "mine"), mine)
		assert.Equal(t, append(slices.Clone(opAdmin.Scopes), "theirs"), theirs)
	})
}

// TestMCPOperationReadsBodyOnce checks that the peek reads the body to
// its end once and hands the next handler a body of the same bytes.
func TestMCPOperationReadsBodyOnce(t *testing.T) {
	op := newMCPOperation(t, testMCPScopes())
	echo := callTool(`"echo"`)
	var reads int
	src := strings.NewReader(echo)
	r := httptest.NewRequest(http.MethodPost, "/mcp", readFunc(func(p []byte) (int, error) {
		reads++
		return src.Read(p)
	}))
	r.ContentLength = int64(len(echo))
	_, err := op(r)
	require.NoError(t, err)
	n := reads
	assert.LessOrEqual(t, n, 2, "a body of known length is read with one read and one at its end")
	rest, err := io.ReadAll(r.Body)
	require.NoError(t, err)
	assert.Equal(t, echo, string(rest))
	assert.Equal(t, n, reads, "the next handler reads the copy")
	assert.True(t, bytes.Equal([]byte(echo), rest))
}

// readFunc is an io.Reader made of a function.
type readFunc func([]byte) (int, error)

func (f readFunc) Read(p []byte) (int, error) { return f(p) }

// typicalToolCall is a tools/call request as an MCP client sends it, of
// about 200 bytes.
const typicalToolCall = `{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"echo",` +
	`"arguments":{"text":"Hello from the benchmark","count":3},"_meta":{"progressToken":"tok-42"}}}`

// benchBody is a request body that a benchmark puts back before each call.
type benchBody struct{ strings.Reader }

func (*benchBody) Close() error { return nil }

// benchRequest returns a request of method with body, and a function that
// gives it its body again.
func benchRequest(method, body string) (*http.Request, func()) {
	r := httptest.NewRequest(method, "/mcp", nil)
	src := new(benchBody)
	return r, func() {
		src.Reset(body)
		r.Body = src
		r.ContentLength = int64(len(body))
	}
}

// nothing is an OperationFunc that does nothing, held in a variable so
// that the compiler calls it as it calls any other OperationFunc.
var nothing OperationFunc = func(*http.Request) (Operation, error) { return Operation{}, nil }

// BenchmarkReadBody is the limit the peek is held to: reading the body of
// a typical tools/call once, with io.ReadAll; and, for a GET, which has no
// body to read, calling an OperationFunc that does nothing.
func BenchmarkReadBody(b *testing.B) {
	b.Run("tools-call", func(b *testing.B) {
		r, reset := benchRequest(http.MethodPost, typicalToolCall)
		b.SetBytes(int64(len(typicalToolCall)))
		b.ReportAllocs()
		for b.Loop() {
			reset()
			body, err := io.ReadAll(r.Body)
			if err != nil || len(body) != len(typicalToolCall) {
				b.Fatal(err)
			}
		}
	})
	b.Run("GET", func(b *testing.B) {
		op := nothing
		r, reset := benchRequest(http.MethodGet, "")
		reset()
		b.ReportAllocs()
		for b.Loop() {
			got, err := op(r)
			if err != nil || got.Name != "" {
				b.Fatal(got, err)
			}
		}
	})
}

// BenchmarkMCPOperation measures the peek: a typical tools/call, read,
// put back and mapped to its scopes, and a GET, which it does not read.
func BenchmarkMCPOperation(b *testing.B) {
	op := newMCPOperation(b, testMCPScopes())
	b.Run("tools-call", func(b *testing.B) {
		r, reset := benchRequest(http.MethodPost, typicalToolCall)
		b.SetBytes(int64(len(typicalToolCall)))
		b.ReportAllocs()
		for b.Loop() {
			reset()
			got, err := op(r)
			if err != nil || got.Name != opEcho.Name {
				b.Fatal(got, err)
			}
		}
	})
	b.Run("GET", func(b *testing.B) {
		r, reset := benchRequest(http.MethodGet, "")
		reset()
		b.ReportAllocs()
		for b.Loop() {
			got, err := op(r)
			if err != nil || got.Name != "" {
				b.Fatal(got, err)
			}
		}
	})
}

// BenchmarkMCPOperationScan measures the peek's reading of a typical
// tools/call already in memory, without reading the body or putting it
// back: the one-pass reading that such a request takes, and the careful
// scanner that other bodies take.
func BenchmarkMCPOperationScan(b *testing.B) {
	p, err := newMCPPeek(testMCPScopes())
	require.NoError(b, err)
	body := []byte(typicalToolCall)
	for _, bc := range []struct {
		name string
		read func([]byte) (*Operation, error)
	}{
		{"quick", p.read},
		{"careful", p.readCarefully},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if op, err := bc.read(body); err != nil || op.Name != opEcho.Name {
					b.Fatal(op, err)
				}
			}
		})
	}
}

// TestMCPOperationAllocations checks that reading a typical tools/call
// allocates only the body handed on, which holds its bytes, that a body of
// maxInlineBody bytes costs one allocation and one byte more two, that the
// scanner itself allocates nothing, and that a GET costs nothing.
func TestMCPOperationAllocations(t *testing.T) {
	p, err := newMCPPeek(testMCPScopes())
	require.NoError(t, err)
	body := []byte(typicalToolCall)
	assert.Zero(t, testing.AllocsPerRun(100, func() {
		if op, err := p.read(body); err != nil || op.Name != opEcho.Name {
			t.Fatal(op, err)
		}
	}), "the scanner allocates nothing")

	op := newMCPOperation(t, testMCPScopes())
	r, reset := benchRequest(http.MethodPost, typicalToolCall)
	assert.Equal(t, 1.0, testing.AllocsPerRun(100, func() {
		reset()
		if got, err := op(r); err != nil || got.Name != opEcho.Name {
			t.Fatal(got, err)
		}
	}), "the body handed on, which holds its bytes")

	// At the bound, and just past it, where the bytes are a second object.
	assert.Equal(t, 4096-8-1, maxInlineBody, "4 KiB in all, less the state and the room for the read that finds the end")
	for size, want := range map[int]float64{maxInlineBody: 1, maxInlineBody + 1: 2} {
		body := padBody(size)
		r, reset := benchRequest(http.MethodPost, body)
		assert.Equal(t, want, testing.AllocsPerRun(100, func() {
			reset()
			if got, err := op(r); err != nil || got.Name != opEcho.Name {
				t.Fatal(got, err)
			}
		}), "a body of %d bytes", size)
	}

	get, _ := benchRequest(http.MethodGet, "")
	assert.Zero(t, testing.AllocsPerRun(100, func() {
		if got, err := op(get); err != nil || got.Name != "" {
			t.Fatal(got, err)
		}
	}), "a GET costs nothing")
}

// quickCase is a body for the tests of quickMessage, and whether
// quickMessage reads it rather than leaving it to the careful scanner.
type quickCase struct {
	name  string
	body  string
	quick bool
}

// quickCases are bodies in the shapes that clients send, which
// quickMessage reads, and bodies that just miss each of its shortcuts and
// checks, which it leaves to the careful scanner or reads the long way.
func quickCases() []quickCase {
	// tsCall is a tools/call in the order the TypeScript SDK sends it.
	const tsCall = `{"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}},"jsonrpc":"2.0","id":1}`
	deep := func(depth int) string { // a call of echo nested depth deep
		return rpc(`"tools/call"`, `{"name":"echo","arguments":{"a":`+nested(depth-3)+`}}`)
	}
	return []quickCase{
		// What clients send.
		{"typical call", typicalToolCall, true},
		{"call in the TypeScript SDK's order", tsCall, true},
		{"call without arguments", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}`, true},
		{"name after arguments", rpc(`"tools/call"`, `{"arguments":{"name":"whoami"},"name":"echo"}`), true},
		{"params before method", `{"params":{"name":"echo"},"method":"tools/call","id":"a-b","jsonrpc":"2.0"}`, true},
		{"long tool name", callTool(`"get_weather_forecast_for_a_city"`), true},
		{"other method", rpc(`"resources/read"`, `{"uri":"file:///a"}`), true},
		{"notification", `{"jsonrpc":"2.0","method":"notifications/initialized"}`, true},
		{"response", `{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"x"}],"isError":false}}`, true},
		{"empty message", `{}`, true},
		{"empty params", rpc(`"tools/call"`, `{}`), true},
		{"tools/call without params", `{"jsonrpc":"2.0","id":1,"method":"tools/call"}`, true},
		{"white space everywhere", " {\n\t\"jsonrpc\" : \"2.0\" ,\r\n \"id\" : 1 , \"method\" : \"tools/call\" , \"params\" : { \"name\" : \"echo\" , \"arguments\" : { } } }\n ", true},
		{"escapes off the path", rpc(`"tools/call"`, `{"name":"echo","arguments":{"t\"e\\xt":"a\"b\\c\/\b\f\n\r\t\u00e9\ud83d\ude00"}}`), true},
		{"lone surrogate off the path", rpc(`"tools/call"`, `{"name":"echo","arguments":{"\udc00":"\ud800"}}`), true},
		{"not ASCII off the path", rpc(`"tools/call"`, "{\"name\":\"echo\",\"arguments\":{\"t\u00e9xt\":\"h\u00e9llo \xff\xfe\"}}"), true},
		{"every kind of value off the path", rpc(`"tools/call"`, `{"name":"echo","arguments":{"a":[1,-0,0.5,-1.5e-3,2E+10,true,false,null,"",[],{},[[{}]],{"b":{"c":[]}}]}}`), true},
		{"strings of 7, 8, 15 and 16 bytes", rpc(`"tools/call"`, `{"name":"echo","arguments":{"1234567":"12345678","123456789012345":"1234567890123456"}}`), true},
		{"method name like tools/call", rpc(`"tools/calls"`, `{"name":"echo"}`), true},
		{"jsonrpc not 2.0", `{"jsonrpc":"2.00","id":1,"method":"tools/call","params":{"name":"echo"}}`, true},
		{"jsonrpc that begins with 2.0", `{"jsonrpc":"2.0,","id":1,"method":"tools/call","params":{"name":"echo"}}`, true},
		{"objects after params", `{"method":"tools/call","params":{"name":"echo"},"x":{"name":"whoami","Name":1},"y":[{"Name":2}]}`, true},
		{"names like the ones on the path", `{"jsonrpc_":1,"i":2,"ids":3,"methods":4,"method":"tools/call","param":5,"params":{"nam":1,"names":2,"argument":3,"argumentss":4,"arguments_":5,"_met":6,"_metas":7,"name":"echo"}}`, true},
		{"names on the path off the path", `{"x":{"method":"tools/list","params":{"name":"whoami"}},"method":"tools/call","params":{"name":"echo","arguments":{"name":"x","Name":"y","NAME":"z"}}}`, true},
		{"nested as deep as the quick bound", deep(maxQuickDepth), true},

		// Just off those shapes.
		{"nested past the quick bound", deep(maxQuickDepth + 1), false},
		{"batch", "[" + callTool(`"echo"`) + "]", false},
		{"not an object", `"tools/call"`, false},
		{"Method", `{"jsonrpc":"2.0","id":1,"Method":"tools/call","params":{"name":"echo"}}`, false},
		{"methoD", `{"jsonrpc":"2.0","id":1,"methoD":"tools/call","params":{"name":"echo"}}`, false},
		{"PARAMS", `{"jsonrpc":"2.0","id":1,"method":"tools/call","PARAMS":{"name":"echo"}}`, false},
		{"Name", rpc(`"tools/call"`, `{"Name":"echo"}`), false},
		{"namE after name", rpc(`"tools/call"`, `{"name":"echo","namE":"whoami"}`), false},
		{"Name in the params of another method", rpc(`"resources/read"`, `{"uri":"x","Name":"y"}`), false},
		{"method twice", `{"method":"tools/list","method":"tools/call","params":{"name":"echo"}}`, false},
		{"method twice, the second with a space", `{"method":"tools/list","method" :"tools/call","params":{"name":"echo"}}`, false},
		{"params twice", `{"method":"tools/call","params":{"name":"echo"},"params":{"name":"whoami"}}`, false},
		{"name twice", rpc(`"tools/call"`, `{"name":"echo","name":"whoami"}`), false},
		{"name twice, the second with a space", rpc(`"tools/call"`, `{"name":"echo","name" :"whoami"}`), false},
		{"escaped member name on the path", `{"m\u0065thod":"tools/call","params":{"name":"echo"}}`, false},
		{"escaped name in params", rpc(`"tools/call"`, `{"n\u0061me":"echo"}`), false},
		{"escaped other name in the message", `{"jsonrp\u0063":"2.0","method":"tools/call","params":{"name":"echo"}}`, false},
		{"escaped method", rpc(`"tools\/call"`, `{"name":"echo"}`), false},
		{"escaped tool name", callTool(`"\u0065cho"`), false},
		{"not ASCII in a member name of the message", "{\"m\u00e9thode\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\"}}", false},
		{"not ASCII in a member name of params", rpc(`"tools/call"`, "{\"n\u00e4me\":1,\"name\":\"echo\"}"), false},
		{"param\u017f", "{\"method\":\"tools/call\",\"params\":{\"name\":\"echo\"},\"param\u017f\":{\"name\":\"whoami\"}}", false},
		{"not ASCII in the tool name", callTool("\"\u00e9cho\""), false},
		{"invalid UTF-8 in the method", rpc("\"tools/call\xff\"", `{"name":"echo"}`), false},
		{"method not a string", rpc(`1`, `{"name":"echo"}`), false},
		{"params not an object", rpc(`"tools/call"`, `["echo"]`), false},
		{"params of another method not an object", rpc(`"resources/read"`, `["x"]`), false},
		{"name not a string", callTool(`null`), false},
		{"data after the message", typicalToolCall + "x", false},
		{"a second message", typicalToolCall + typicalToolCall, false},
		{"trailing comma", `{"method":"tools/call","params":{"name":"echo"},}`, false},
		{"missing colon", `{"method" "tools/call"}`, false},
		{"leading zero", `{"id":01,"method":"tools/call","params":{"name":"echo"}}`, false},
		{"bad escape off the path", rpc(`"tools/call"`, `{"name":"echo","arguments":{"t":"\x"}}`), false},
		{"control character in a name in params", rpc(`"tools/call"`, "{\"argument\x01\":1,\"name\":\"echo\"}"), false},
		{"control character off the path", rpc(`"tools/call"`, "{\"name\":\"echo\",\"arguments\":{\"t\":\"a\x01\"}}"), false},
		{"truncated in jsonrpc", `{"jsonrpc":"2.0`, false},
		{"truncated after jsonrpc", `{"jsonrpc":"2.0"`, false},
		{"truncated in the method", `{"method":"tools/ca`, false},
		{"truncated in tools/call", `{"method":"tools/call`, false},
		{"truncated after a name", `{"method"`, false},
		{"truncated in arguments", `{"method":"tools/call","params":{"name":"echo","argument`, false},
		{"truncated in a string near the end", `{"a":"x`, false},
		{"truncated in a literal", `{"a":tru`, false},
		{"truncated in a number", `{"a":-`, false},
		{"value missing", `{"a":}`, false},
		{"brace for a bracket", `{"a":[1}}`, false},
		{"bracket for a brace", `{"a":{"b":1]}`, false},
	}
}

// carefulMessage reads body, which must begin with an object, with the
// careful scanner alone, and returns the message it reads, or why it does
// not read it as one message to let through: the body is not JSON, nests
// too deep, has data after the object, or a member on the path is refused.
// The refusals that p.messageOperation makes are not errors here.
func carefulMessage(p *mcpPeek, body []byte) (rpcMessage, error) {
	var s rpcScan
	ops := opList{peek: p}
	i := space(body, 0)
	if at(body, i) != '{' {
		return rpcMessage{}, errors.New("not an object")
	}
	end, err := s.message(body, i, 1, &ops)
	switch {
	case err != nil:
		return s.m, err
	case space(body, end) != len(body):
		return s.m, errTrailingData
	case s.refusal != nil:
		if _, opErr := p.messageOperation(&s.m); opErr == nil || opErr.Error() != s.refusal.Error() {
			return s.m, s.refusal
		}
	}
	return s.m, nil
}

// messageView is what a message names, comparable.
type messageView struct {
	Method, Name                  string
	HasMethod, HasParams, HasName bool
	ParamsErr                     string
}

func viewMessage(m rpcMessage) messageView {
	v := messageView{Method: string(m.method), Name: string(m.name), HasMethod: m.hasMethod, HasParams: m.hasParams, HasName: m.hasName}
	if m.paramsErr != nil {
		v.ParamsErr = m.paramsErr.Error()
	}
	return v
}

// errText is the text of err, or "" for nil.
func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// assertReadsAsCarefully checks that p reads body as the careful scanner
// alone reads it, and, when quickMessage reads body, that it reads the
// message the careful scanner reads. It returns whether quickMessage read
// body.
func assertReadsAsCarefully(t testing.TB, p *mcpPeek, body []byte) bool {
	t.Helper()
	got, err := p.read(body)
	want, wantErr := p.readCarefully(body)
	require.Equal(t, *want, *got, "the Operation")
	require.Equal(t, errText(wantErr), errText(err), "the refusal")
	var m rpcMessage
	if !quickMessage(body, &m) {
		return false
	}
	careful, err := carefulMessage(p, body)
	require.NoError(t, err, "quickMessage reads only what the careful scanner lets through")
	require.Equal(t, viewMessage(careful), viewMessage(m), "the message")
	return true
}

// TestMCPOperationQuickReadingIsTheCarefulReading checks that the one-pass
// reading of a single message gives, for each body it reads, the message
// and the Operation that the careful scanner gives, that it reads the
// shapes clients send, and that it leaves to the careful scanner each body
// that just misses one of its shortcuts or checks.
func TestMCPOperationQuickReadingIsTheCarefulReading(t *testing.T) {
	p, err := newMCPPeek(testMCPScopes())
	require.NoError(t, err)
	for _, tc := range quickCases() {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.quick, assertReadsAsCarefully(t, p, []byte(tc.body)), "read by quickMessage")
		})
	}
}

// FuzzMCPOperation checks, for any body, that the peek never panics, hands
// on the body as it came, passes a body whose first value encoding/json
// cannot read (nested at most maxJSONDepth) with a zero Operation, refuses
// anything but white space after a first value that is an object or an
// array, and names no operation for a body nested deeper than
// maxJSONDepth; and that it reads the body as the careful scanner alone
// reads it, the message included when quickMessage reads it.
func FuzzMCPOperation(f *testing.F) {
	for _, seed := range []string{
		typicalToolCall,
		callTool(`"echo"`),
		callTool(`"\u0065cho"`),
		rpc(`"tools/call"`, `{"Name":"echo"}`),
		"[" + callTool(`"echo"`) + "," + callTool(`"admin"`) + "]",
		callTool(`"echo"`) + "x",
		callTool(`"echo"`)[:30],
		rpc(`"tools/call"`, "{\"name\":\"ech\xff\"}"),
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami"},"param` + "\u017f" + `":{"name":"echo"}}`,
		nested(70),
		"",
	} {
		f.Add([]byte(seed))
	}
	for _, tc := range quickCases() {
		f.Add([]byte(tc.body))
	}
	op := newMCPOperation(f, testMCPScopes())
	p, err := newMCPPeek(testMCPScopes())
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, body []byte) {
		assertReadsAsCarefully(t, p, body)
		r := httptest.NewRequest(http.MethodPost, "/mcp", bytes.NewReader(body))
		got, err := op(r)
		if err == nil {
			rest, readErr := io.ReadAll(r.Body)
			require.NoError(t, readErr)
			require.True(t, bytes.Equal(body, rest), "the body is handed on as it came")
		}
		// The go-sdk reads the first value with a Decoder, as here.
		dec := json.NewDecoder(bytes.NewReader(body))
		var first json.RawMessage
		decErr := dec.Decode(&first)
		var syntax *json.SyntaxError
		switch {
		case bracketDepth(body) > maxJSONDepth:
			// Refused, unless the first value ends or breaks before it
			// nests that deep.
			require.True(t, err != nil || got.Name == "", "nested too deep: %v %v", got, err)
		case errors.As(decErr, &syntax) || errors.Is(decErr, io.EOF) || errors.Is(decErr, io.ErrUnexpectedEOF):
			require.NoError(t, err, "a body that is not JSON is passed on")
			require.Equal(t, Operation{}, got)
		case decErr == nil && (first[0] == '{' || first[0] == '['):
			if len(bytes.TrimLeft(body[dec.InputOffset():], " \t\r\n")) > 0 {
				require.Error(t, err, "data after the first value")
			}
		}
	})
}

// chunkReader returns at most n bytes a read from r.
type chunkReader struct {
	r io.Reader
	n int
}

func (c chunkReader) Read(p []byte) (int, error) { return c.r.Read(p[:min(len(p), c.n)]) }

// FuzzMCPOperationRestoresBody checks, for any body, stated length, size of
// the reads and MaxBodySize, that the peek refuses a body stated or found
// longer than MaxBodySize, and else reads it as it reads the same body
// stated rightly and read whole, and hands it on byte for byte.
func FuzzMCPOperationRestoresBody(f *testing.F) {
	for _, size := range []int{0, 100, 165, 250, 497, maxInlineBody - 1, maxInlineBody, maxInlineBody + 1, 9000} {
		body := []byte(typicalToolCall)
		if size > len(body) {
			body = []byte(padBody(size))
		}
		f.Add(body, int64(len(body)), uint16(0), int64(0))
		f.Add(body, int64(-1), uint16(7), int64(len(body)))
		f.Add(body, int64(len(body)/2), uint16(1), int64(len(body)-1))
		f.Add(body, int64(len(body)+3), uint16(300), int64(len(body)+1))
	}
	exact := newMCPOperation(f, testMCPScopes())
	f.Fuzz(func(t *testing.T, body []byte, stated int64, chunk uint16, limit int64) {
		stated = max(-1, min(stated, int64(len(body))+10))
		if limit <= 0 || limit > 1<<20 {
			limit = 0 // DefaultMCPMaxBodySize
		}
		m := testMCPScopes()
		m.MaxBodySize = limit
		op := newMCPOperation(t, m)
		var src io.Reader = bytes.NewReader(body)
		if chunk > 0 {
			src = chunkReader{src, int(chunk)}
		}
		r := httptest.NewRequest(http.MethodPost, "/mcp", src)
		r.ContentLength = stated
		got, err := op(r)
		if limit == 0 {
			limit = DefaultMCPMaxBodySize
		}
		if stated > limit || int64(len(body)) > limit {
			require.ErrorIs(t, err, ErrRequestTooLarge)
			return
		}
		want, wantErr := exact(httptest.NewRequest(http.MethodPost, "/mcp", bytes.NewReader(body)))
		require.Equal(t, errText(wantErr), errText(err))
		require.Equal(t, want, got)
		if err == nil {
			require.NoError(t, iotest.TestReader(r.Body, body), "the body is handed on as it came")
		}
	})
}

// bracketDepth counts the deepest nesting of brackets and braces outside
// strings, as the go-sdk's depth check does.
func bracketDepth(d []byte) int {
	depth, deepest, inString, escaped := 0, 0, false, false
	for _, c := range d {
		switch {
		case inString && escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case inString:
			inString = c != '"'
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
			deepest = max(deepest, depth)
		case c == '}' || c == ']':
			depth = max(depth-1, 0)
		}
	}
	return deepest
}
