// Package introspection verifies opaque OAuth 2.0 bearer tokens by asking the
// authorization server about them with RFC 7662 Token Introspection. It is
// made for Go servers, above all MCP servers, that accept tokens they cannot
// read themselves.
//
// A [Verifier] built from [Settings] POSTs the token to the introspection
// endpoint with the resource server's client credentials, decodes the answer
// strictly, and checks active, exp, nbf, issuer, audience, token_use and the
// required scopes:
//
//	v, err := introspection.NewVerifier(introspection.Settings{
//		IntrospectionURL: "https://auth.example.com/oauth2/introspect",
//		ClientID:         "my-resource-server",
//		ClientSecret:     os.Getenv("INTROSPECTION_CLIENT_SECRET"),
//		RequiredScopes:   []string{"mcp:tools"},
//		Audience:         []string{"https://mcp.example.com/mcp"}, // this server
//		CacheTTL:         time.Minute,
//	})
//	if err != nil {
//		return err
//	}
//	defer v.Close()
//	tok, err := v.Verify(ctx, bearerToken)
//	switch {
//	case errors.Is(err, introspection.ErrInvalidToken):      // 401
//	case errors.Is(err, introspection.ErrInsufficientScope): // 403
//	case err != nil:                                         // 503: the server gave no usable answer
//	}
//
// Concurrent calls for one token share one request. With CacheTTL set,
// answers are cached (never past the token's exp, RFC 7662 §4) and every
// check runs again on each hit. [RequireBearerToken] wraps an [net/http]
// handler with an RFC 6750 bearer check (the package's resourceServer
// example is a whole server); the introspectiontest package runs an RFC 7662
// server for tests.
package introspection
