package introspection

import (
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestFailedMetadataRegistrationKeepsWhatTheMuxServed: when the mux
// refuses the second pattern, the path-suffixed URL that it took first is
// served as before the call, by the caller's catch-all, and not answered
// 404 by a handler that is never ready.
func TestFailedMetadataRegistrationKeepsWhatTheMuxServed(t *testing.T) {
	const root = "/.well-known/oauth-protected-resource"
	theirs := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("theirs")) })
	tests := []struct {
		name     string
		wildcard string // conflicts with the root pattern, not with the path-suffixed one
	}{
		{"a GET wildcard", "GET /.well-known/{x}"},
		{"a POST wildcard", "POST /.well-known/{x}"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mux := http.NewServeMux()
			mux.Handle("/", theirs)
			mux.Handle(tc.wildcard, theirs)
			before := serveMetadata(t, mux, http.MethodGet, "https://mcp.example.com"+root+"/mcp")
			require.Equal(t, http.StatusOK, before.Code)
			require.Equal(t, "theirs", before.Body.String())

			_, err := HandleProtectedResourceMetadata(mux, validMetadata("https://mcp.example.com/mcp"))
			require.Error(t, err)

			after := serveMetadata(t, mux, http.MethodGet, "https://mcp.example.com"+root+"/mcp")
			assert.Equal(t, before.Code, after.Code, "what the mux served before is served still")
			assert.Equal(t, before.Body.String(), after.Body.String(), "what the mux served before is served still")
		})
	}
}

// TestMetadataRouteTakenWhateverTheCaseOfTheHost: host names are
// case-insensitive and clients send them in lower case, so a catch-all on
// the resource's host, which the mux prefers, takes the metadata's route
// from a resource written in upper case as from one in lower case.
func TestMetadataRouteTakenWhateverTheCaseOfTheHost(t *testing.T) {
	const root = "/.well-known/oauth-protected-resource"
	theirs := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("theirs")) })
	for _, resource := range []string{"https://mcp.example.com/mcp", "https://MCP.EXAMPLE.COM/mcp", "https://Mcp.Example.Com/mcp"} {
		t.Run(resource, func(t *testing.T) {
			mux := http.NewServeMux()
			mux.Handle("mcp.example.com/", theirs)
			_, err := HandleProtectedResourceMetadata(mux, validMetadata(resource))
			if err != nil {
				assert.ErrorContains(t, err, `"mcp.example.com/"`)
				return
			}
			// Accepted: then a client must find the document.
			w := serveMetadata(t, mux, http.MethodGet, "https://mcp.example.com"+root+"/mcp")
			assert.Contains(t, w.Body.String(), `"resource":"`+resource+`"`,
				"HandleProtectedResourceMetadata succeeded, but the mux serves the caller's catch-all there")
		})
	}
}

// TestCallerOfAUserTokenWithoutSubjectIsNotItsClient: an answer that names
// its user by username but has no sub is a user's token, not a client
// acting for itself, so its caller is not the client id that every user of
// that client shares.
func TestCallerOfAUserTokenWithoutSubjectIsNotItsClient(t *testing.T) {
	tests := []struct {
		name   string
		answer string
	}{
		{"username, no sub", `{"active":true,"client_id":"app","username":"alice"}`},
		{"username, empty sub", `{"active":true,"client_id":"app","username":"alice","sub":""}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := newVerifier(t, jsonServer(t, http.StatusOK, tc.answer).URL, nil, nil)
			tok, err := v.Verify(context.Background(), "tok")
			require.NoError(t, err)
			assert.NotEqual(t, "app", tok.Caller(), "every user of the client app is one caller")
		})
	}
}
