package mcpsdk

import (
	"context"
	"errors"
	"slices"

	"github.com/mcpauth/introspection"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// errListType is returned when a tools/list result is not what the SDK
// makes, so that FilterTools cannot tell which tools it lists.
var errListType = errors.New("introspection: tools/list result of unexpected type")

// FilterTools returns receiving middleware for an mcp.Server, added with
// AddReceivingMiddleware, that hides from each tools/list result the tools
// the caller's token cannot call: a tool listed in toolScopes is shown only
// when check accepts the token (from [AccessTokenFromInfo]) for the tool's
// scopes. Tools that toolScopes does not list, or lists with no scopes, are
// shown to every caller; a request without a token from this package sees
// only those. A filtered result gets cacheScope "private", since it differs
// between callers.
//
// Give it the same map as introspection.MCPScopes.Tools and the verifier's
// [introspection.Verifier.CheckScopes] as check, so that a tool is listed
// when the middleware in front lets a call of it through. A nil check
// matches scopes exactly ([introspection.AccessToken.HasScope]), which hides
// more tools than a scope hierarchy would, never fewer. toolScopes is copied.
//
// Hiding a tool does not refuse calls of it: the per-tool scopes of the
// middleware in front do that ([introspection.MCPOperation]).
func FilterTools(toolScopes map[string][]string, check func(t *introspection.AccessToken, scopes ...string) error) mcp.Middleware {
	need := make(map[string][]string, len(toolScopes))
	for name, scopes := range toolScopes {
		if len(scopes) > 0 {
			need[name] = slices.Clone(scopes)
		}
	}
	if check == nil {
		check = exactScopes
	}
	return func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			res, err := next(ctx, method, req)
			if err != nil || method != "tools/list" || len(need) == 0 {
				return res, err
			}
			list, ok := res.(*mcp.ListToolsResult)
			if !ok {
				return nil, errListType
			}
			var t *introspection.AccessToken
			if extra := req.GetExtra(); extra != nil {
				t, _ = AccessTokenFromInfo(extra.TokenInfo)
			}
			filtered := *list
			filtered.Tools = make([]*mcp.Tool, 0, len(list.Tools))
			for _, tool := range list.Tools {
				if scopes, ok := need[tool.Name]; ok && (t == nil || check(t, scopes...) != nil) {
					continue
				}
				filtered.Tools = append(filtered.Tools, tool)
			}
			filtered.CacheScope = "private"
			return &filtered, nil
		}
	}
}

// exactScopes is FilterTools' check when none is given.
func exactScopes(t *introspection.AccessToken, scopes ...string) error {
	for _, s := range scopes {
		if !t.HasScope(s) {
			return introspection.ErrInsufficientScope
		}
	}
	return nil
}
