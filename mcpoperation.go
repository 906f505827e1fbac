package introspection

import "net/http"

// DefaultMCPMaxBodySize is the body size MCPOperation reads when
// MCPScopes.MaxBodySize is zero.
const DefaultMCPMaxBodySize = 4 << 20

// MCPScopes maps MCP JSON-RPC requests to the scopes they need.
type MCPScopes struct {
	// Tools maps a tool name (params.name of tools/call) to the scopes a call of it needs.
	Tools map[string][]string
	// Methods maps a JSON-RPC method (for example "resources/read") to the scopes it needs;
	// an entry for "tools/call" applies to every tool call, on top of Tools.
	Methods map[string][]string
	// MaxBodySize caps the body read. Zero means DefaultMCPMaxBodySize.
	MaxBodySize int64
}

// MCPOperation returns the OperationFunc for m, after checking every scope in it.
func MCPOperation(m MCPScopes) (OperationFunc, error) {
	return func(r *http.Request) (Operation, error) { return Operation{}, nil }, nil
}

const maxJSONDepth = 1000

func foldsTo(key []byte, name string) bool { return false }
