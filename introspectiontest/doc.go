// Package introspectiontest runs an in-process OAuth 2.0 authorization
// server for tests and demos, in the way go-oidc's oidctest does for OpenID
// Connect: an RFC 7662 introspection endpoint, a token endpoint and the
// metadata that lets clients find both from the issuer alone.
//
// The server listens on 127.0.0.1 and knows clients by secret ([Server.AddClient])
// or by public key ([Server.AddKeyClient]). They authenticate at both
// endpoints with client_secret_basic (RFC 6749 §2.3.1, form-encoded
// credentials), client_secret_post, client_secret_jwt (HS256, secrets of at
// least 32 bytes) or private_key_jwt (RFC 7523 §2.2; RS256, PS256, ES256,
// ES384, EdDSA). Client assertions are verified fully: signature with the
// client's own secret or key and an algorithm that fits it, iss and sub
// equal to the client id, aud naming the issuer or one of the endpoints,
// exp in the future and at most 5 minutes ahead, iat and nbf not in the
// future beyond 30 seconds, and a jti never used before (the server
// remembers up to 1<<20 of them until they expire). [Server.SetAuthMethods]
// limits the methods it accepts and advertises; a request with more than
// one method is refused (RFC 6749 §2.3).
//
// It issues opaque tokens with chosen scopes, subject, audience, lifetime
// and extra claims ([Server.Issue]), or to clients over its token endpoint
// with the client_credentials grant (RFC 6749 §4.4, with RFC 8707 resource
// indicators as audience), revokes them, and answers introspection as
// RFC 7662 §2.2 says: active tokens with their metadata, anything else as
// {"active":false}; a token issued with [TokenOptions].KeepActive stays
// active past its exp, so that a verifier's own expiry check is reached.
//
// It serves RFC 8414 authorization server metadata at [MetadataPath] and
// OpenID Connect Discovery metadata at [OpenIDMetadataPath], with its
// [Server.Issuer] as issuer, so that a verifier or an MCP client configured
// with the issuer alone finds it. It can inject faults into introspection
// and counts the requests it served.
package introspectiontest
