package introspectiontest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/url"
	"strings"

	"github.com/mcpauth/introspection"
	"github.com/mcpauth/introspection/introspectiontest"
)

// metadata is the part of the RFC 8414 document the example uses.
type metadata struct {
	Issuer                string `json:"issuer"`
	TokenEndpoint         string `json:"token_endpoint"`
	IntrospectionEndpoint string `json:"introspection_endpoint"`
}

// discover fetches the authorization server metadata of issuer, as RFC 8414
// §3 says, and checks that it names the same issuer.
func discover(issuer string) (*metadata, error) {
	resp, err := http.Get(issuer + introspectiontest.MetadataPath)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var md metadata
	if err := json.NewDecoder(resp.Body).Decode(&md); err != nil {
		return nil, err
	}
	if md.Issuer != issuer {
		return nil, fmt.Errorf("metadata names issuer %q", md.Issuer)
	}
	return &md, nil
}

// clientCredentials gets a token from tokenURL for a client that
// authenticates with client_secret_basic (RFC 6749 §4.4).
func clientCredentials(tokenURL, id, secret, scope, resource string) (string, error) {
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {scope}, "resource": {resource}}
	req, err := http.NewRequest(http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
		Error       string `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("token endpoint: %d %s", resp.StatusCode, body.Error)
	}
	return body.AccessToken, nil
}

// This example is a test that knows the authorization server by its issuer
// alone: it finds the endpoints in the server's metadata, gets a token for
// an MCP client over the token endpoint, and has a Verifier check it.
func Example_discovery() {
	as := introspectiontest.NewServer()
	defer as.Close()
	as.AddClient("mcp-client", "mcp-client-secret")

	md, err := discover(as.Issuer)
	if err != nil {
		log.Fatal(err)
	}
	tok, err := clientCredentials(md.TokenEndpoint, "mcp-client", "mcp-client-secret", "mcp:tools", "https://mcp.example.com/mcp")
	if err != nil {
		log.Fatal(err)
	}

	v, err := introspection.NewVerifier(introspection.Settings{
		IntrospectionURL: md.IntrospectionEndpoint,
		ClientID:         introspectiontest.ClientID,
		ClientSecret:     introspectiontest.ClientSecret,
		Issuer:           md.Issuer,
		Audience:         []string{"https://mcp.example.com/mcp"},
		RequiredScopes:   []string{"mcp:tools"},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer v.Close()
	at, err := v.Verify(context.Background(), tok)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(at.ClientID, at.Scopes, at.Audience)
	// Output:
	// mcp-client [mcp:tools] [https://mcp.example.com/mcp]
}
