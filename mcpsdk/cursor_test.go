package mcpsdk_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpauth/introspection/mcpsdk"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// pagedServer connects a client, in memory and without a token, to an MCP
// server with one tool a page, the tools names and the middleware filter
// (none when nil). reads counts the tools/list requests that reach the
// SDK, behind filter.
func pagedServer(t *testing.T, names []string, filter mcp.Middleware) (cs *mcp.ClientSession, reads *atomic.Int64) {
	t.Helper()
	reads = new(atomic.Int64)
	server := mcp.NewServer(&mcp.Implementation{Name: "test", Version: "v1"}, &mcp.ServerOptions{PageSize: 1})
	for _, name := range names {
		mcp.AddTool(server, &mcp.Tool{Name: name},
			func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
				return &mcp.CallToolResult{}, nil, nil
			})
	}
	counter := func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			if method == "tools/list" {
				reads.Add(1)
			}
			return next(ctx, method, req)
		}
	}
	if filter != nil {
		server.AddReceivingMiddleware(filter, counter)
	} else {
		server.AddReceivingMiddleware(counter)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ct, st := mcp.NewInMemoryTransports()
	ss, err := server.Connect(ctx, st, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = ss.Close() })
	cs, err = mcp.NewClient(&mcp.Implementation{Name: "test-client", Version: "v1"}, nil).Connect(ctx, ct, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = cs.Close() })
	return cs, reads
}

// list lists one page of tools of cs from cursor.
func list(t *testing.T, cs *mcp.ClientSession, cursor string) (*mcp.ListToolsResult, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return cs.ListTools(ctx, &mcp.ListToolsParams{Cursor: cursor})
}

// TestFilterToolsRefusesCursorsItDidNotMake: a tools/list cursor is good
// only at the FilterTools that made it, unchanged. Any other, the SDK's own
// cursor (which a client could write to name any tool) included, gets the
// JSON-RPC invalid params error with which the SDK answers a bad cursor,
// and never reaches the SDK.
func TestFilterToolsRefusesCursorsItDidNotMake(t *testing.T) {
	names := []string{"a", "b", "c"} // shown to everyone
	scopes := map[string][]string{"hidden": {"mcp:admin"}}
	cs, reads := pagedServer(t, names, mcpsdk.FilterTools(scopes, nil))
	first, err := list(t, cs, "")
	require.NoError(t, err)
	require.Equal(t, []string{"a"}, toolNames(first))
	require.NotEmpty(t, first.NextCursor)
	own, err := list(t, cs, first.NextCursor)
	require.NoError(t, err, "FilterTools refuses its own cursor")
	assert.Equal(t, []string{"b"}, toolNames(own))

	sdk, _ := pagedServer(t, names, nil)
	sdkFirst, err := list(t, sdk, "")
	require.NoError(t, err)
	require.NotEmpty(t, sdkFirst.NextCursor)
	other, _ := pagedServer(t, names, mcpsdk.FilterTools(scopes, nil))
	otherFirst, err := list(t, other, "")
	require.NoError(t, err)
	require.NotEmpty(t, otherFirst.NextCursor)

	raw, err := base64.URLEncoding.DecodeString(first.NextCursor)
	require.NoError(t, err)
	flipped := append([]byte(nil), raw...)
	flipped[len(flipped)-1] ^= 1
	tests := []struct {
		name, cursor string
	}{
		{"a bit flipped", base64.URLEncoding.EncodeToString(flipped)},
		{"cut short", base64.URLEncoding.EncodeToString(raw[:len(raw)-1])},
		{"only the nonce", base64.URLEncoding.EncodeToString(raw[:12])},
		{"the SDK's own cursor", sdkFirst.NextCursor},
		{"another FilterTools' cursor", otherFirst.NextCursor},
		{"not base64", "!!!"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.NotEqual(t, first.NextCursor, tc.cursor)
			before := reads.Load()
			res, err := list(t, cs, tc.cursor)
			var wire *jsonrpc.Error
			require.True(t, errors.As(err, &wire), "want a JSON-RPC error, got %v, %v", res, err)
			assert.Equal(t, int64(jsonrpc.CodeInvalidParams), wire.Code)
			assert.Equal(t, before, reads.Load(), "the cursor reached the SDK")
		})
	}
}

// TestFilterToolsSkipsPagesWithoutAVisibleTool: while a page of the SDK
// shows the caller no tool and has a next one, FilterTools reads the next,
// up to mcpsdk.MaxListPages pages for one tools/list; past that it answers
// the empty page with a cursor, from which the client lists on.
func TestFilterToolsSkipsPagesWithoutAVisibleTool(t *testing.T) {
	for _, hidden := range []int{mcpsdk.MaxListPages - 1, mcpsdk.MaxListPages} {
		t.Run(fmt.Sprint(hidden, " hidden tools first"), func(t *testing.T) {
			names := []string{"visible"}
			scopes := map[string][]string{}
			for i := range hidden {
				name := fmt.Sprintf("h%03d", i) // sorts before "visible"
				names = append(names, name)
				scopes[name] = []string{"mcp:admin"}
			}
			cs, reads := pagedServer(t, names, mcpsdk.FilterTools(scopes, nil))
			res, err := list(t, cs, "")
			require.NoError(t, err)
			if hidden < mcpsdk.MaxListPages {
				assert.Equal(t, []string{"visible"}, toolNames(res))
				assert.Empty(t, res.NextCursor)
				assert.Equal(t, int64(hidden+1), reads.Load())
				return
			}
			assert.Empty(t, res.Tools)
			require.NotEmpty(t, res.NextCursor, "an empty page without a cursor hides the rest of the list")
			assert.Equal(t, int64(mcpsdk.MaxListPages), reads.Load())
			res, err = list(t, cs, res.NextCursor)
			require.NoError(t, err)
			assert.Equal(t, []string{"visible"}, toolNames(res))
			assert.Empty(t, res.NextCursor)
			assert.Equal(t, int64(hidden+1), reads.Load())
		})
	}
}
