package oidcprovider

import (
	"bytes"
	"context"
	"encoding/json"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// dpopClientTimeout bounds one run of dpopclient.mjs: node's start, two key
// pairs, one token request and the proofs.
const dpopClientTimeout = 30 * time.Second

// ProofRequest asks for one DPoP proof (RFC 9449 §4.2) for a request to a
// resource server.
type ProofRequest struct {
	// Method is the request's method, the proof's htm.
	Method string `json:"method"`
	// URL is the request's URL without query and fragment, the proof's htu.
	URL string `json:"url"`
	// OtherKey makes the proof with a second key pair of the client, one
	// the access token is not bound to. False means the token's key.
	OtherKey bool `json:"-"`
}

// DPoPOptions configure [Provider.DPoPToken].
type DPoPOptions struct {
	// Scopes are asked for with the client credentials grant.
	Scopes []string
	// Resource, if set, is sent as the RFC 8707 resource indicator: the
	// token's aud is Resource. Empty means none is sent.
	Resource string
	// Alg is the JWS alg of the client's key pairs: ES256, Ed25519, RS256
	// or PS256. Empty means ES256.
	Alg string
	// Proofs are the proofs to make for the access token, each with ath.
	Proofs []ProofRequest
}

// DPoPToken is what dpopclient.mjs, a client built on the npm package dpop
// (an independent RFC 9449 implementation), got and made.
type DPoPToken struct {
	// AccessToken is bound to the key of the proof the client sent to the
	// token endpoint.
	AccessToken string
	// TokenType is the token endpoint's token_type, "DPoP" for a bound
	// token.
	TokenType string
	// Proofs holds one DPoP proof JWT for each of DPoPOptions.Proofs, in
	// the same order.
	Proofs []string
}

// DPoPToken runs dpopclient.mjs: it makes two key pairs, obtains an access
// token for the DPoP client ([DPoPClientID]) with the client credentials
// grant and a DPoP proof of the first key pair, then makes the proofs that
// opts asks for. Each call has its own key pairs. It skips t like [Node]
// when node or the package dpop is missing.
func (p *Provider) DPoPToken(t testing.TB, opts DPoPOptions) *DPoPToken {
	t.Helper()
	node := Node(t, "dpop")
	type proof struct {
		ProofRequest
		Key string `json:"key"`
	}
	in := struct {
		TokenEndpoint string  `json:"token_endpoint"`
		ClientID      string  `json:"client_id"`
		ClientSecret  string  `json:"client_secret"`
		Scope         string  `json:"scope"`
		Resource      string  `json:"resource,omitempty"`
		Alg           string  `json:"alg,omitempty"`
		Proofs        []proof `json:"proofs"`
	}{
		TokenEndpoint: p.Issuer + "/token",
		ClientID:      DPoPClientID,
		ClientSecret:  DPoPClientSecret,
		Scope:         strings.Join(opts.Scopes, " "),
		Resource:      opts.Resource,
		Alg:           opts.Alg,
		Proofs:        []proof{},
	}
	for _, r := range opts.Proofs {
		key := "token"
		if r.OtherKey {
			key = "other"
		}
		in.Proofs = append(in.Proofs, proof{r, key})
	}
	stdin, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), dpopClientTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "dpopclient.mjs")
	cmd.Dir = Dir()
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		// dpopclient.mjs never writes the token or the secret to stderr.
		t.Fatalf("dpopclient.mjs: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	var out struct {
		AccessToken string   `json:"access_token"`
		TokenType   string   `json:"token_type"`
		Proofs      []string `json:"proofs"`
	}
	if err := json.Unmarshal(stdout, &out); err != nil {
		t.Fatalf("dpopclient.mjs printed no JSON object: %v", err)
	}
	if out.AccessToken == "" || len(out.Proofs) != len(opts.Proofs) {
		t.Fatalf("dpopclient.mjs gave %d proofs for %d requests, access token empty: %t",
			len(out.Proofs), len(opts.Proofs), out.AccessToken == "")
	}
	return &DPoPToken{AccessToken: out.AccessToken, TokenType: out.TokenType, Proofs: out.Proofs}
}

// Introspect returns the provider's RFC 7662 answer for token, as the
// resource server ([BasicClientID]) asks for it, decoded into a map.
func (p *Provider) Introspect(t testing.TB, token string) map[string]any {
	t.Helper()
	var answer map[string]any
	p.postAs(t, BasicClientID, ResourceServerSecret, "/token/introspection", url.Values{"token": {token}}, &answer)
	if answer == nil {
		t.Fatal("introspection answered null")
	}
	return answer
}
