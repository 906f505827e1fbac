package e2e

import (
	"cmp"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/mcpauth/introspection"
	"github.com/mcpauth/introspection/interop/oidcprovider"
	"github.com/mcpauth/introspection/introspectiontest"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// dpopClient sends token with the DPoP scheme (RFC 9449 §7.1) and a fresh
// proof of key with every request of a go-sdk client, for the request's
// method and URL.
type dpopClient struct {
	key   *introspectiontest.DPoPKey
	token string
}

func (d dpopClient) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "DPoP "+d.token)
	r.Header.Set("DPoP", d.key.Proof(r.Method, r.URL.String(), d.token))
	return clientTransport.RoundTrip(r)
}

// connectDPoP opens a session of the go-sdk client with endpoint, sending
// token, bound to key, with a proof per request.
func connectDPoP(ctx context.Context, endpoint string, key *introspectiontest.DPoPKey, token string) (*mcp.ClientSession, error) {
	return connectVia(ctx, endpoint, dpopClient{key, token}, "")
}

// sendDPoP posts body to endpoint with token under the DPoP scheme and
// proof in a DPoP header, in session when not empty. header adds headers.
func sendDPoP(t *testing.T, endpoint, token, proof, session, body string, header http.Header) reply {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(body))
	require.NoError(t, err)
	for name, values := range header {
		req.Header[name] = values
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "DPoP "+token)
	req.Header.Set("DPoP", proof)
	if session != "" {
		req.Header.Set("Mcp-Session-Id", session)
		req.Header.Set("Mcp-Protocol-Version", LegacyProtocol)
	}
	resp, err := httpClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return reply{resp.StatusCode, resp.Header.Values("WWW-Authenticate"), resp.Header.Get("Mcp-Session-Id"), string(b)}
}

// rawMetadata fetches the metadata document of the server listening at
// listen, as JSON members.
func rawMetadata(t *testing.T, listen string) map[string]json.RawMessage {
	t.Helper()
	resp, err := httpClient.Get("http://" + listen + wellKnown + mcpPath)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var md map[string]json.RawMessage
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&md))
	return md
}

// DPoP checks an example under each INTROSPECTION_DPOP mode: whether a
// DPoP client (RFC 9449), its token bound to its key, opens a session and
// calls echo; what a Bearer request gets, with the bound token and with an
// unbound one, and which challenges; and what the metadata says of DPoP
// (dpop_signing_alg_values_supported, dpop_bound_access_tokens_required).
func DPoP(t *testing.T, ex Example) {
	type challenges func(metadataURL string) []string
	bearer := func(attrs string) challenges {
		return func(md string) []string {
			return []string{`Bearer realm="mcp", ` + attrs + `scope="mcp:tools", resource_metadata="` + md + `"`}
		}
	}
	dpop := func(md string) []string {
		return []string{`DPoP realm="mcp", scope="mcp:tools", resource_metadata="` + md + `", ` + dpopAlgs}
	}
	both := func(md string) []string { return append(bearer(`error="invalid_token", `)(md), dpop(md)...) }
	for _, tc := range []struct {
		name string
		mode string // INTROSPECTION_DPOP; empty leaves it unset
		// dpopServed says whether the DPoP client is served.
		dpopServed bool
		// boundAsBearer is the 401's challenges for the bound token as
		// Bearer.
		boundAsBearer challenges
		// unboundServed says whether an unbound token, as Bearer, is
		// served; else it gets unboundChallenges.
		unboundServed     bool
		unboundChallenges challenges
		// algs and required are the metadata's DPoP members, "" when left
		// out.
		algs, required string
	}{
		{name: "unset: allowed", dpopServed: true, boundAsBearer: both, unboundServed: true,
			algs: `["ES256","ES384","ES512","RS256","PS256","EdDSA","Ed25519"]`},
		{name: "allowed", mode: "allowed", dpopServed: true, boundAsBearer: both, unboundServed: true,
			algs: `["ES256","ES384","ES512","RS256","PS256","EdDSA","Ed25519"]`},
		{name: "required", mode: "required", dpopServed: true, boundAsBearer: dpop, unboundChallenges: dpop,
			algs: `["ES256","ES384","ES512","RS256","PS256","EdDSA","Ed25519"]`, required: "true"},
		{name: "off", mode: "off", boundAsBearer: bearer(`error="invalid_token", `), unboundServed: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var env []string
			if tc.mode != "" {
				env = []string{"INTROSPECTION_DPOP", tc.mode}
			}
			srv, iss := startConfigured(t, ex, env...)
			metadataURL, err := introspection.MetadataURL(srv.endpoint)
			require.NoError(t, err)
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			key := introspectiontest.NewDPoPKey()
			bound := iss.as.Issue(introspectiontest.TokenOptions{Subject: "alice", ClientID: "app",
				Scopes: []string{ScopeTools, ScopeEcho}, Audience: []string{iss.resource}, DPoPKey: key.Thumbprint()})

			t.Run("a DPoP client calls echo", func(t *testing.T) {
				cs, err := connectDPoP(ctx, srv.endpoint, key, bound)
				if !tc.dpopServed {
					assert.Error(t, err, "the DPoP scheme is refused")
					return
				}
				require.NoError(t, err)
				defer cs.Close()
				said, err := CallEcho(ctx, cs, "hi")
				require.NoError(t, err)
				assert.Equal(t, "hi", said)
				c, err := CallWhoami(ctx, cs)
				require.NoError(t, err)
				assert.Equal(t, "alice", c.UserID)
			})
			t.Run("the bound token as Bearer: 401", func(t *testing.T) {
				r := send(t, http.MethodPost, srv.endpoint, bound, "", initializeRequest)
				assert.Equal(t, http.StatusUnauthorized, r.status)
				assert.Equal(t, tc.boundAsBearer(metadataURL), r.challenge)
			})
			t.Run("an unbound token as Bearer", func(t *testing.T) {
				r := send(t, http.MethodPost, srv.endpoint, iss.user("alice", ScopeTools), "", initializeRequest)
				if tc.unboundServed {
					assert.Equal(t, http.StatusOK, r.status, r.body)
					return
				}
				assert.Equal(t, http.StatusUnauthorized, r.status)
				assert.Equal(t, tc.unboundChallenges(metadataURL), r.challenge)
			})
			t.Run("the metadata", func(t *testing.T) {
				md := rawMetadata(t, listenAddress(t, srv.out.String()))
				for member, want := range map[string]string{
					"dpop_signing_alg_values_supported": tc.algs,
					"dpop_bound_access_tokens_required": tc.required,
				} {
					if want == "" {
						assert.NotContains(t, md, member)
					} else {
						assert.JSONEq(t, want, string(md[member]), member)
					}
				}
			})
		})
	}
}

// DPoPProofNamesThePublicURL checks the URL that a DPoP proof of a request
// to an example must name (htu): its public URL and the request's path,
// also when the request reaches it at another address, as behind a proxy;
// INTROSPECTION_PUBLIC_BASE_URL when set; with
// INTROSPECTION_TRUST_FORWARDED_HEADERS, the scheme and host of
// X-Forwarded-Proto and X-Forwarded-Host. A proof for any other URL gets
// 401 invalid_dpop_proof.
func DPoPProofNamesThePublicURL(t *testing.T, ex Example) {
	const public = "https://mcp.example.com"
	forwarded := http.Header{"X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"fwd.example.com"}}
	for _, tc := range []struct {
		name     string
		env      []string
		header   http.Header // sent with each request
		accepted string      // the htu accepted; "" for http://LISTENER/mcp
		refused  []string    // htu values refused; "" for http://LISTENER/mcp
	}{
		{name: "the public URL, not the address the request reached", accepted: public + mcpPath,
			refused: []string{"", "https://mcp.example.com/other"}},
		{name: "INTROSPECTION_PUBLIC_BASE_URL wins", env: []string{"INTROSPECTION_PUBLIC_BASE_URL", "https://proxy.example.com/tools"},
			accepted: "https://proxy.example.com/tools/mcp", refused: []string{"", public + mcpPath}},
		{name: "INTROSPECTION_TRUST_FORWARDED_HEADERS: the forwarded scheme and host",
			env: []string{"INTROSPECTION_TRUST_FORWARDED_HEADERS", "true"}, header: forwarded,
			accepted: "https://fwd.example.com/mcp", refused: []string{"", public + mcpPath}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			as := introspectiontest.NewServer()
			defer as.Close()
			configure(t, as)
			t.Setenv("INTROSPECTION_DPOP", "required")
			for i := 0; i+1 < len(tc.env); i += 2 {
				t.Setenv(tc.env[i], tc.env[i+1])
			}
			srv := start(t, ex, "127.0.0.1:0", public)
			require.Equal(t, public+mcpPath, srv.endpoint)
			endpoint := "http://" + listenAddress(t, srv.out.String()) + mcpPath
			key := introspectiontest.NewDPoPKey()
			token := as.Issue(introspectiontest.TokenOptions{Subject: "alice", Scopes: []string{ScopeTools},
				Audience: []string{srv.endpoint}, DPoPKey: key.Thumbprint()})
			htu := func(u string) string { return cmp.Or(u, endpoint) }

			r := sendDPoP(t, endpoint, token, key.Proof(http.MethodPost, htu(tc.accepted), token), "", initializeRequest, tc.header)
			assert.Equal(t, http.StatusOK, r.status, "a proof for %s: %s", htu(tc.accepted), r.body)
			for _, u := range tc.refused {
				r := sendDPoP(t, endpoint, token, key.Proof(http.MethodPost, htu(u), token), "", initializeRequest, tc.header)
				assert.Equal(t, http.StatusUnauthorized, r.status, "a proof for %s", htu(u))
				assert.Contains(t, strings.Join(r.challenge, " "), `error="invalid_dpop_proof"`, "a proof for %s", htu(u))
			}
		})
	}
}

// DPoPWithOIDCProvider runs an example with INTROSPECTION_DPOP=required
// against oidc-provider, which issues DPoP-bound opaque tokens, with
// proofs made by the npm package dpop (interop/oidc/dpopclient.mjs), an
// independent implementation of RFC 9449: the client opens a session and
// calls echo, each request with its own proof. The token sent as Bearer,
// with a proof of another key, or with a proof used before, gets 401.
func DPoPWithOIDCProvider(t *testing.T, ex Example) {
	p := oidcprovider.Start(t)
	clearEnv(t)
	t.Setenv("INTROSPECTION_URL", p.IntrospectionURL)
	t.Setenv("INTROSPECTION_CLIENT_ID", oidcprovider.BasicClientID)
	t.Setenv("INTROSPECTION_CLIENT_SECRET", oidcprovider.ResourceServerSecret)
	t.Setenv("INTROSPECTION_ISSUER", p.Issuer)
	t.Setenv("INTROSPECTION_DPOP", "required")
	srv := start(t, ex, "127.0.0.1:0", "")
	post := oidcprovider.ProofRequest{Method: http.MethodPost, URL: srv.endpoint}
	otherKey := post
	otherKey.OtherKey = true
	tok := p.DPoPToken(t, oidcprovider.DPoPOptions{
		Scopes:   []string{ScopeTools, ScopeEcho},
		Resource: srv.endpoint,
		Proofs:   []oidcprovider.ProofRequest{post, post, post, otherKey},
	})
	require.Equal(t, "DPoP", tok.TokenType)
	initialize, initialized, echo, other := tok.Proofs[0], tok.Proofs[1], tok.Proofs[2], tok.Proofs[3]

	r := sendDPoP(t, srv.endpoint, tok.AccessToken, initialize, "", initializeRequest, nil)
	require.Equal(t, http.StatusOK, r.status, r.body)
	session := r.session
	require.NotEmpty(t, session)
	r = sendDPoP(t, srv.endpoint, tok.AccessToken, initialized, session, `{"jsonrpc":"2.0","method":"notifications/initialized"}`, nil)
	require.Equal(t, http.StatusAccepted, r.status, r.body)
	r = sendDPoP(t, srv.endpoint, tok.AccessToken, echo, session, echoRequest, nil)
	require.Equal(t, http.StatusOK, r.status, r.body)
	assert.Contains(t, r.body, `"text":"hi"`, "echo said hi")

	r = sendDPoP(t, srv.endpoint, tok.AccessToken, echo, session, echoRequest, nil)
	assert.Equal(t, http.StatusUnauthorized, r.status, "a proof used before")
	assert.Contains(t, strings.Join(r.challenge, " "), `error="invalid_dpop_proof"`)
	r = sendDPoP(t, srv.endpoint, tok.AccessToken, other, session, echoRequest, nil)
	assert.Equal(t, http.StatusUnauthorized, r.status, "a proof of another key")
	assert.Contains(t, strings.Join(r.challenge, " "), `error="invalid_token"`)
	r = send(t, http.MethodPost, srv.endpoint, tok.AccessToken, session, echoRequest)
	assert.Equal(t, http.StatusUnauthorized, r.status, "the token as Bearer")
	require.Len(t, r.challenge, 1)
	assert.True(t, strings.HasPrefix(r.challenge[0], "DPoP "), r.challenge[0])
}
