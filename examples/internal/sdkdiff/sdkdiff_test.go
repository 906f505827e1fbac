// Package sdkdiff checks introspection.MCPOperation against the two Go MCP
// SDKs it stands in front of: whenever an SDK runs a tool for a body that
// the peek let through, the peek asked for that tool's scopes.
package sdkdiff

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	mcpgo "github.com/mark3labs/mcp-go/mcp"
	mcpgoserver "github.com/mark3labs/mcp-go/server"
	"github.com/mcpauth/introspection"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// tools are the tools both servers have.
var tools = []string{"whoami", "echo"}

// scopes maps the tools to the scopes they need: each its own, and every
// tool call one more.
var scopes = introspection.MCPScopes{
	Tools: map[string][]string{
		"whoami": {"scope:whoami"},
		"echo":   {"scope:echo"},
	},
	Methods: map[string][]string{
		"tools/call": {"scope:call"},
	},
}

// needs returns every scope a call of tool needs.
func needs(tool string) []string {
	return append(slices.Clone(scopes.Methods["tools/call"]), scopes.Tools[tool]...)
}

// ranLog records the tools a server ran.
type ranLog struct {
	mu  sync.Mutex
	ran []string
}

func (l *ranLog) add(tool string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ran = append(l.ran, tool)
}

// take returns the tools run since the last take, sorted and each once.
func (l *ranLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	ran := l.ran
	l.ran = nil
	slices.Sort(ran)
	return slices.Compact(ran)
}

// sdk is one SDK's streamable HTTP handler and the log of its tools.
type sdk struct {
	name    string
	handler http.Handler
	log     *ranLog
}

// goSDK returns a stateless go-sdk server with the tools, answering JSON.
func goSDK() sdk {
	log := new(ranLog)
	server := mcp.NewServer(&mcp.Implementation{Name: "sdkdiff", Version: "1"}, nil)
	for _, tool := range tools {
		server.AddTool(&mcp.Tool{Name: tool, InputSchema: json.RawMessage(`{"type":"object"}`)},
			func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
				log.add(tool)
				return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: tool}}}, nil
			})
	}
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server },
		&mcp.StreamableHTTPOptions{Stateless: true, JSONResponse: true})
	return sdk{"go-sdk", h, log}
}

// mcpGo returns a stateless mcp-go server with the tools.
func mcpGo() sdk {
	log := new(ranLog)
	server := mcpgoserver.NewMCPServer("sdkdiff", "1", mcpgoserver.WithToolCapabilities(false))
	for _, tool := range tools {
		server.AddTool(mcpgo.NewTool(tool), func(context.Context, mcpgo.CallToolRequest) (*mcpgo.CallToolResult, error) {
			log.add(tool)
			return mcpgo.NewToolResultText(tool), nil
		})
	}
	h := mcpgoserver.NewStreamableHTTPServer(server, mcpgoserver.WithStateLess(true))
	return sdk{"mcp-go", h, log}
}

// sdks builds both SDKs once for the package's tests.
var sdks = sync.OnceValue(func() []sdk { return []sdk{goSDK(), mcpGo()} })

// post returns a POST of body as an MCP client sends it.
func post(body []byte) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/mcp", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Accept", "application/json, text/event-stream")
	return r
}

// run sends r to s and returns the tools s ran for it.
func (s sdk) run(r *http.Request) []string {
	s.log.take()
	s.handler.ServeHTTP(httptest.NewRecorder(), r)
	return s.log.take()
}

// outcome is what happened to one body.
type outcome struct {
	op      introspection.Operation
	err     error
	ran     map[string][]string // by SDK: the tools run behind the peek, when it let the body through
	without map[string][]string // by SDK: the tools run for the body with no peek in front
}

// check runs body through the peek and, when the peek lets it through, on
// through each SDK; it fails t if an SDK ran a tool whose scopes the
// Operation lacks, or if the SDK read other bytes than those that came.
func check(t testing.TB, peek introspection.OperationFunc, body []byte) outcome {
	t.Helper()
	o := outcome{ran: map[string][]string{}, without: map[string][]string{}}
	for _, s := range sdks() {
		o.without[s.name] = s.run(post(body))
	}
	r := post(body)
	o.op, o.err = peek(r)
	if o.err != nil {
		return o
	}
	restored, err := io.ReadAll(r.Body)
	require.NoError(t, err)
	require.True(t, bytes.Equal(body, restored), "the SDK reads the body as it came")
	for _, s := range sdks() {
		r := post(body)
		if _, err := peek(r); err != nil {
			t.Fatalf("the peek answered the same body differently: %v", err)
		}
		o.ran[s.name] = s.run(r)
		for _, tool := range o.ran[s.name] {
			for _, scope := range needs(tool) {
				if !slices.Contains(o.op.Scopes, scope) {
					t.Fatalf("%s ran %s for %q, but the operation %q needs only %v: a caller without %s gets through",
						s.name, tool, body, o.op.Name, o.op.Scopes, scope)
				}
			}
		}
	}
	return o
}

// newPeek returns the peek for scopes.
func newPeek(t testing.TB) introspection.OperationFunc {
	t.Helper()
	peek, err := introspection.MCPOperation(scopes)
	require.NoError(t, err)
	return peek
}

// request returns a JSON-RPC request with the given method and params.
func request(method, params string) string {
	return `{"jsonrpc":"2.0","id":1,"method":` + method + `,"params":` + params + `}`
}

// call returns a tools/call request with the given params.
func call(params string) string { return request(`"tools/call"`, params) }

// nest returns depth arrays, one inside the other.
func nest(depth int) string { return strings.Repeat("[", depth) + strings.Repeat("]", depth) }

// deep returns a call of echo nested depth deep: the request is depth 1,
// params 2, arguments 3.
func deep(depth int) string {
	return call(`{"name":"echo","arguments":{"a":` + nest(depth-3) + `}}`)
}

// corpusEntry is a body, and what is known of it: which tools each SDK
// runs for it without the peek (nil: not asserted), and whether the peek
// refuses it.
type corpusEntry struct {
	name    string
	body    string
	without map[string][]string
	refused bool
}

// orWithout is, by corpus entry name, another outcome an SDK may give for
// the body without the peek, depending on timing.
var orWithout = map[string]map[string][]string{
	// Whether the go-sdk runs the second request, which reuses the first
	// one's id, depends on timing: either way the peek asked for both
	// tools' scopes.
	"batch of two tools with one id": only("go-sdk", "echo", "whoami"),
}

// both says that both SDKs run tools.
func both(tools ...string) map[string][]string {
	return map[string][]string{"go-sdk": tools, "mcp-go": tools}
}

// only says that SDK sdk runs tools and the other none.
func only(sdk string, tools ...string) map[string][]string {
	m := both()
	m[sdk] = tools
	return m
}

// corpus is the differential test's bodies, and the fuzz target's seeds.
func corpus() []corpusEntry {
	whoami := call(`{"name":"whoami","arguments":{}}`)
	echo := call(`{"name":"echo","arguments":{"text":"hi"}}`)
	echo2 := strings.Replace(echo, `"id":1`, `"id":2`, 1) // a batch's requests need ids of their own
	return []corpusEntry{
		// Plain requests, to show that the SDKs run what they are sent.
		{"whoami", whoami, both("whoami"), false},
		{"echo", echo, both("echo"), false},
		{"unknown tool", call(`{"name":"nope"}`), both(), false},
		{"initialize", request(`"initialize"`, `{"protocolVersion":"2025-03-26","capabilities":{},"clientInfo":{"name":"c","version":"1"}}`), both(), false},
		{"tools/list", request(`"tools/list"`, `{}`), both(), false},
		{"notification", `{"jsonrpc":"2.0","method":"notifications/initialized"}`, both(), false},
		{"ping", `{"jsonrpc":"2.0","id":1,"method":"ping"}`, both(), false},

		// Member names that fold: mcp-go's encoding/json reads them, the
		// go-sdk does not.
		{"Name", call(`{"Name":"echo"}`), only("mcp-go", "echo"), true},
		{"NAME", call(`{"NAME":"echo"}`), only("mcp-go", "echo"), true},
		{"nAme", call(`{"nAme":"echo"}`), only("mcp-go", "echo"), true},
		{"name then Name", call(`{"name":"whoami","Name":"echo"}`), map[string][]string{"go-sdk": {"whoami"}, "mcp-go": {"echo"}}, true},
		{"Name then name", call(`{"Name":"echo","name":"whoami"}`), both("whoami"), true},
		{"Name escaped", call(`{"name":"whoami","\u004eame":"echo"}`), map[string][]string{"go-sdk": {"whoami"}, "mcp-go": {"echo"}}, true},
		{"Method", `{"jsonrpc":"2.0","id":1,"Method":"tools/call","params":{"name":"echo"}}`, only("mcp-go", "echo"), true},
		{"method then METHOD", `{"jsonrpc":"2.0","id":1,"method":"tools/list","METHOD":"tools/call","params":{"name":"echo"}}`, only("mcp-go", "echo"), true},
		{"Params", `{"jsonrpc":"2.0","id":1,"method":"tools/call","Params":{"name":"echo"}}`, only("mcp-go", "echo"), true},
		{"params then param\u017f (U+017F)", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami"},"param` + "\u017f" + `":{"name":"echo"}}`,
			map[string][]string{"go-sdk": {"whoami"}, "mcp-go": {"echo"}}, true},
		{"PARAM\u017f escaped", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami"},"PARAM\u017F":{"name":"echo"}}`,
			map[string][]string{"go-sdk": {"whoami"}, "mcp-go": {"echo"}}, true},
		{"U+212A folds to no member that matters", call(`{"name":"echo","\u212Aey":"whoami"}`), both("echo"), false},

		// Duplicates: both keep the last.
		{"name twice", call(`{"name":"whoami","name":"echo"}`), both("echo"), true},
		{"name twice, once escaped", call(`{"name":"whoami","n\u0061me":"echo"}`), both("echo"), true},
		{"method twice", `{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call","params":{"name":"echo"}}`, both("echo"), true},
		{"params twice", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami"},"params":{"name":"echo"}}`, both("echo"), true},
		// The peek's one-pass reading of a single message, and bodies just off it.
		{"call in the TypeScript SDK's order", `{"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}},"jsonrpc":"2.0","id":1}`, both("echo"), false},
		{"white space at every token", " { \"jsonrpc\" : \"2.0\" , \"id\" : 1 , \"method\" : \"tools/call\" , \"params\" : { \"name\" : \"echo\" } } ", both("echo"), false},
		{"method with a space before its colon, twice", `{"jsonrpc":"2.0","id":1,"method":"tools/list","method" :"tools/call","params":{"name":"echo"}}`, both("echo"), true},
		{"namE after name", call(`{"name":"echo","namE":"whoami"}`), map[string][]string{"go-sdk": {"echo"}, "mcp-go": {"whoami"}}, true},
		{"names that fold after params", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"},"x":{"Name":"whoami","name":"whoami"}}`, both("echo"), false},
		{"method that begins with tools/call", request(`"tools/calls"`, `{"name":"echo"}`), both(), false},
		{"jsonrpc that begins with 2.0", `{"jsonrpc":"2.0,","id":1,"method":"tools/call","params":{"name":"echo"}}`, nil, false},
		{"name that begins with arguments", call(`{"argumentsx":{"name":"whoami"},"name":"echo"}`), both("echo"), false},
		{"nested 62 deep", deep(62), both("echo"), false},
		{"nested 63 deep", deep(63), both("echo"), false},

		// Escapes are decoded by both.
		{"tool name escaped", call(`{"name":"\u0065cho"}`), both("echo"), false},
		{"member names escaped", `{"jsonrpc":"2.0","id":1,"m\u0065thod":"tools\/call","p\u0061rams":{"n\u0061me":"echo"}}`, both("echo"), false},

		// Batches: the go-sdk runs every request in one.
		{"batch of two tools", "[" + whoami + "," + echo2 + "]", only("go-sdk", "echo", "whoami"), false},
		{"batch of two tools with one id", "[" + whoami + "," + echo + "]", only("go-sdk", "whoami"), false},
		{"batch with an attack", "[" + echo2 + "," + call(`{"name":"whoami","Name":"echo"}`) + "]", only("go-sdk", "echo", "whoami"), true},
		{"batch with a response", `[{"jsonrpc":"2.0","id":9,"result":{}},` + echo + "]", nil, false},

		// Trailing data: the go-sdk runs the first value.
		{"garbage after", echo + "garbage", only("go-sdk", "echo"), true},
		{"a second request after", whoami + echo, only("go-sdk", "whoami"), true},
		{"white space after", echo + " \n", both("echo"), false},

		// Nesting: the go-sdk stops at 1000.
		{"nested 1000 deep", deep(1000), both("echo"), false},
		{"nested 1001 deep", deep(1001), only("mcp-go", "echo"), true},
		{"nested 100000 deep", "[" + strings.Repeat("[", 100000), both(), true},

		// Invalid UTF-8 and lone surrogates become U+FFFD in both.
		{"invalid UTF-8 in the tool name", call("{\"name\":\"echo\xff\"}"), both(), true},
		{"invalid UTF-8 in a member name", call("{\"na\xffme\":\"echo\",\"name\":\"whoami\"}"), both("whoami"), true},
		{"lone surrogate in the tool name", call(`{"name":"echo\ud800"}`), both(), true},
		{"invalid UTF-8 in arguments", call("{\"name\":\"echo\",\"arguments\":{\"t\":\"\xff\"}}"), both("echo"), false},

		// Shapes neither SDK runs.
		{"tool name a number", call(`{"name":1}`), both(), true},
		{"method a number", request(`1`, `{"name":"echo"}`), both(), true},
		{"params an array", request(`"tools/call"`, `["echo"]`), both(), true},

		// Invalid JSON: neither runs it, and it goes on for the SDK to answer.
		{"cut short", echo[:len(echo)-1], both(), false},
		{"trailing comma", strings.TrimSuffix(echo, "}") + ",}", both(), false},
		{"leading zero", `{"jsonrpc":"2.0","id":01,"method":"tools/call","params":{"name":"echo"}}`, both(), false},
		{"control character", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\",\"t\":\"\x01\"}}", both(), false},
		{"bad escape", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","t":"\x"}}`, both(), false},
		{"empty", "", both(), false},

		// Size: the peek reads 4 MiB, the go-sdk's own bound.
		{"echo at the size bound", echo + strings.Repeat(" ", introspection.DefaultMCPMaxBodySize-len(echo)), both("echo"), false},
		{"echo past the size bound", echo + strings.Repeat(" ", introspection.DefaultMCPMaxBodySize+1-len(echo)), only("mcp-go", "echo"), true},
	}
}

// TestPeekAgainstSDKs runs the corpus through the peek and both SDKs: no
// SDK runs a tool the Operation does not ask the scopes of, each body the
// peek refuses is refused, and each SDK runs what the corpus says it runs
// without the peek (so that the attacks are real, and the harness sees
// tools run).
func TestPeekAgainstSDKs(t *testing.T) {
	peek := newPeek(t)
	for _, tc := range corpus() {
		t.Run(tc.name, func(t *testing.T) {
			o := check(t, peek, []byte(tc.body))
			if tc.refused {
				assert.Error(t, o.err, "the peek refuses it")
			} else {
				assert.NoError(t, o.err, "the peek lets it through")
			}
			for sdk, want := range tc.without {
				if alt, ok := orWithout[tc.name][sdk]; ok && slices.Equal(alt, o.without[sdk]) {
					continue
				}
				assert.Equal(t, want, o.without[sdk], "%s runs, without the peek", sdk)
			}
			if o.err == nil {
				for sdk, ran := range o.ran {
					if alt, ok := orWithout[tc.name][sdk]; ok && (slices.Equal(alt, ran) || slices.Equal(tc.without[sdk], ran)) {
						continue
					}
					assert.Equal(t, o.without[sdk], ran, "%s runs the same behind the peek", sdk)
				}
			}
		})
	}
}

// FuzzPeekAgainstSDKs checks, for any body, that no SDK runs a tool for a
// body the peek let through without the Operation asking for that tool's
// scopes.
func FuzzPeekAgainstSDKs(f *testing.F) {
	for _, tc := range corpus() {
		if len(tc.body) < 1<<16 {
			f.Add([]byte(tc.body))
		}
	}
	peek := newPeek(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		check(t, peek, body)
	})
}
