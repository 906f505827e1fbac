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

// maxListPages is the most pages of the SDK's tools/list that FilterTools
// reads for one request. While a page shows the caller no tool and the SDK
// has a next one, FilterTools reads that, so that a client does not page
// through the hidden tools one empty page at a time; at the bound it
// answers the empty page with a cursor, and the client lists on from there.
const maxListPages = 16

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
// With a page size (mcp.ServerOptions.PageSize), the SDK's nextCursor names
// the last tool of its page, which may be a hidden one. FilterTools seals
// it: the client gets it encrypted and authenticated (AES-256-GCM) under a
// random key that this call of FilterTools made, and a cursor that does not
// open under that key, changed, the SDK's own or another FilterTools', gets
// the JSON-RPC invalid params error with which the SDK answers a bad
// cursor, and never reaches the SDK. Cursors are therefore good only at the
// server that gave them and until the process ends: replicas behind one
// URL do not take one another's, and a client that gets the error lists
// again from the start. A page that shows the caller no tool is not
// answered while the SDK has more: FilterTools reads on, up to 16 pages of
// the SDK for one tools/list, and past that answers the empty page with a
// cursor to list on from.
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
	cursors := newCursorSealer()
	return func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			if method != "tools/list" || len(need) == 0 {
				return next(ctx, method, req)
			}
			lr, ok := req.(*mcp.ListToolsRequest)
			if !ok {
				return nil, errListType
			}
			if lr.Params != nil && lr.Params.Cursor != "" {
				c, ok := cursors.open(lr.Params.Cursor)
				if !ok {
					return nil, errInvalidCursor()
				}
				lr = withCursor(lr, c)
			}
			var t *introspection.AccessToken
			if extra := lr.GetExtra(); extra != nil {
				t, _ = AccessTokenFromInfo(extra.TokenInfo)
			}
			var filtered mcp.ListToolsResult
			for page := 1; ; page++ {
				res, err := next(ctx, method, lr)
				if err != nil {
					return res, err
				}
				list, ok := res.(*mcp.ListToolsResult)
				if !ok {
					return nil, errListType
				}
				filtered = *list
				filtered.Tools = make([]*mcp.Tool, 0, len(list.Tools))
				for _, tool := range list.Tools {
					if scopes, ok := need[tool.Name]; ok && (t == nil || check(t, scopes...) != nil) {
						continue
					}
					filtered.Tools = append(filtered.Tools, tool)
				}
				if len(filtered.Tools) > 0 || list.NextCursor == "" || page == maxListPages {
					break
				}
				lr = withCursor(lr, list.NextCursor)
			}
			if filtered.NextCursor != "" {
				filtered.NextCursor = cursors.seal(filtered.NextCursor)
			}
			filtered.CacheScope = "private"
			return &filtered, nil
		}
	}
}

// withCursor returns a copy of req that lists from the SDK's cursor c.
func withCursor(req *mcp.ListToolsRequest, c string) *mcp.ListToolsRequest {
	r := *req
	var p mcp.ListToolsParams
	if req.Params != nil {
		p = *req.Params
	}
	p.Cursor = c
	r.Params = &p
	return &r
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
