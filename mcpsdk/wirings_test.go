package mcpsdk_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/mcpauth/introspection"
	"github.com/mcpauth/introspection/introspectiontest"
	"github.com/mcpauth/introspection/mcpsdk"
	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// answer is what one wiring answers one request of the package doc's table.
type answer struct {
	status int
	// errorCode is the challenge's error attribute; "" for none.
	errorCode string
}

// TestWiringsAnswerAsDocumented sends each request of the package doc's
// table through both wirings, each requiring mcp:tools where its doc says,
// and checks the answers against the test's table and the doc's.
func TestWiringsAnswerAsDocumented(t *testing.T) {
	const md = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
	type wiring struct {
		required []string
		wire     func(v *introspection.Verifier) func(http.Handler) http.Handler
	}
	ours := wiring{[]string{"mcp:tools"}, func(v *introspection.Verifier) func(http.Handler) http.Handler {
		return func(h http.Handler) http.Handler {
			return introspection.RequireBearerToken(v, &introspection.MiddlewareOptions{ResourceMetadataURL: md})(mcpsdk.WithTokenInfo(h, &mcpsdk.Options{ResourceMetadataURL: md}))
		}
	}}
	sdk := wiring{nil, func(v *introspection.Verifier) func(http.Handler) http.Handler {
		return auth.RequireBearerToken(mcpsdk.TokenVerifier(v), &auth.RequireBearerTokenOptions{
			ResourceMetadataURL: md, Scopes: []string{"mcp:tools"},
		})
	}}
	sdkAllowingNoExp := wiring{nil, func(v *introspection.Verifier) func(http.Handler) http.Handler {
		return auth.RequireBearerToken(mcpsdk.TokenVerifier(v), &auth.RequireBearerTokenOptions{
			ResourceMetadataURL: md, Scopes: []string{"mcp:tools"}, AllowMissingExpiration: true,
		})
	}}

	good := introspectiontest.TokenOptions{Subject: "alice", Scopes: []string{"mcp:tools"}}
	rows := []struct {
		row           string // the row's first cell in the package doc
		authorization string // "{token}" is replaced by a token issued with token
		token         introspectiontest.TokenOptions
		outage        bool
		// bound binds the token to a new DPoP key, whose proof for the
		// request goes with it in a DPoP header.
		bound     bool
		ours, sdk answer
		// sdkAllowingNoExp, if set, is the SDK's answer with AllowMissingExpiration.
		sdkAllowingNoExp *answer
	}{
		{row: "no Authorization header",
			ours: answer{401, ""}, sdk: answer{401, ""}},
		{row: "Authorization: Bearer a b", authorization: "Bearer a b",
			ours: answer{400, "invalid_request"}, sdk: answer{401, ""}},
		{row: "unknown token", authorization: "Bearer unknown-token",
			ours: answer{401, "invalid_token"}, sdk: answer{401, ""}},
		{row: "token without exp", authorization: "Bearer {token}",
			token: introspectiontest.TokenOptions{Subject: "alice", Scopes: []string{"mcp:tools"}, NoExpiry: true},
			ours:  answer{200, ""}, sdk: answer{401, ""}, sdkAllowingNoExp: &answer{200, ""}},
		{row: "token without mcp:tools", authorization: "Bearer {token}",
			token: introspectiontest.TokenOptions{Subject: "alice", Scopes: []string{"profile"}},
			ours:  answer{403, "insufficient_scope"}, sdk: answer{403, ""}},
		{row: "token naming no caller", authorization: "Bearer {token}",
			token: introspectiontest.TokenOptions{Scopes: []string{"mcp:tools"}, Extra: map[string]any{"client_id": nil}},
			ours:  answer{401, "invalid_token"}, sdk: answer{401, ""}},
		{row: "authorization server failing", authorization: "Bearer {token}", token: good, outage: true,
			ours: answer{503, ""}, sdk: answer{500, ""}},
		{row: "DPoP token with its proof", authorization: "DPoP {token}", token: good, bound: true,
			ours: answer{200, ""}, sdk: answer{401, ""}},
		{row: "DPoP token as Bearer", authorization: "Bearer {token}", token: good, bound: true,
			ours: answer{401, "invalid_token"}, sdk: answer{401, ""}},
	}

	src, err := os.ReadFile("mcpsdk.go")
	require.NoError(t, err)
	statuses := regexp.MustCompile(`\b[1-5][0-9][0-9]\b`)

	for _, tc := range rows {
		t.Run(tc.row, func(t *testing.T) {
			line := docTableRow(t, string(src), tc.row)
			want := []string{strconv.Itoa(tc.ours.status), strconv.Itoa(tc.sdk.status)}
			if tc.sdkAllowingNoExp != nil {
				want = append(want, strconv.Itoa(tc.sdkAllowingNoExp.status))
			}
			assert.Equal(t, want, statuses.FindAllString(line, -1), "the doc's row: %s", line)
			if tc.ours.errorCode != "" {
				assert.Contains(t, line, `error="`+tc.ours.errorCode+`"`, "the doc's row")
			}

			cases := map[string]struct {
				w    wiring
				want answer
			}{
				"ours": {ours, tc.ours},
				"sdk":  {sdk, tc.sdk},
			}
			if tc.sdkAllowingNoExp != nil {
				cases["sdk with AllowMissingExpiration"] = struct {
					w    wiring
					want answer
				}{sdkAllowingNoExp, *tc.sdkAllowingNoExp}
			}
			for name, c := range cases {
				t.Run(name, func(t *testing.T) {
					as, v := setup(t, c.w.required)
					srv := httptest.NewServer(c.w.wire(v)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
						w.WriteHeader(http.StatusOK)
					})))
					t.Cleanup(srv.Close)
					req, err := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader("{}"))
					require.NoError(t, err)
					opts := tc.token
					var key *introspectiontest.DPoPKey
					if tc.bound {
						key = introspectiontest.NewDPoPKey()
						opts.DPoPKey = key.Thumbprint()
					}
					token := as.Issue(opts)
					if tc.authorization != "" {
						req.Header.Set("Authorization", strings.Replace(tc.authorization, "{token}", token, 1))
					}
					if key != nil {
						req.Header.Set("DPoP", key.Proof(req.Method, req.URL.String(), token))
					}
					if tc.outage {
						as.SetFault(introspectiontest.Fault{Status: http.StatusInternalServerError})
					}
					resp, err := http.DefaultClient.Do(req)
					require.NoError(t, err)
					defer resp.Body.Close()
					body, err := io.ReadAll(resp.Body)
					require.NoError(t, err)

					assert.Equal(t, c.want.status, resp.StatusCode, "%s", body)
					challenge := resp.Header.Get("WWW-Authenticate")
					if c.want.errorCode == "" {
						assert.NotContains(t, challenge, "error=")
					} else {
						assert.Contains(t, challenge, `error="`+c.want.errorCode+`"`)
					}
					switch c.want.status {
					case http.StatusServiceUnavailable:
						assert.NotEmpty(t, resp.Header.Get("Retry-After"))
						assert.Empty(t, challenge)
					case http.StatusInternalServerError:
						assert.Equal(t, "authorization server unavailable\n", string(body))
					case http.StatusUnauthorized, http.StatusForbidden:
						assert.Contains(t, challenge, `resource_metadata="`+md+`"`)
					}
				})
			}
		})
	}
}

// docTableRow returns the line of the package doc's table whose first cell
// is row.
func docTableRow(t *testing.T, src, row string) string {
	t.Helper()
	doc, _, _ := strings.Cut(src, "\npackage mcpsdk")
	for _, line := range strings.Split(doc, "\n") {
		if rest, ok := strings.CutPrefix(line, "//\t"+row+"  "); ok {
			return rest
		}
	}
	t.Fatalf("the package doc's table has no row %q", row)
	return ""
}
