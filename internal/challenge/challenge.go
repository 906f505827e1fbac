// Package challenge holds the pieces of an RFC 6750 answer that the core
// middleware and the MCP adapters (mcpsdk, mcpgo) share, so that they
// answer alike.
package challenge

import (
	"net/http"
	"strings"
)

// IsPreflight reports whether r is a CORS preflight request (Fetch
// standard): OPTIONS with Origin and Access-Control-Request-Method. A
// browser never sends credentials with one, so a request that carries an
// Authorization header is not one.
func IsPreflight(r *http.Request) bool {
	return r.Method == http.MethodOptions && r.Header.Get("Origin") != "" &&
		r.Header.Get("Access-Control-Request-Method") != "" && len(r.Header.Values("Authorization")) == 0
}

// WriteError writes status with the short generic JSON body {"error":code}
// and Cache-Control: no-store. code must be a fixed token of the caller's.
func WriteError(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(`{"error":"` + code + `"}` + "\n"))
}

// IsAttrChar reports whether c is allowed in a challenge's scope or
// resource_metadata value by RFC 6750 §3: %x21 / %x23-5B / %x5D-7E.
func IsAttrChar(c rune) bool {
	return c == 0x21 || c >= 0x23 && c <= 0x5B || c >= 0x5D && c <= 0x7E
}

// ValidAttr reports whether every character of s is an [IsAttrChar].
func ValidAttr(s string) bool {
	for _, c := range s {
		if !IsAttrChar(c) {
			return false
		}
	}
	return true
}

// FailClosed answers every request with 500, for a handler built with a
// setting it cannot honour.
var FailClosed = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
	WriteError(w, http.StatusInternalServerError, "server_error")
})

// InvalidToken returns a writer of the 401 error="invalid_token" answer,
// whose challenge carries resourceMetadataURL as resource_metadata when it
// is set. The challenge is of the scheme the request's Authorization
// header used: DPoP (RFC 9449 §7.1) for the DPoP scheme, else Bearer. ok is
// false when resourceMetadataURL cannot be sent as is.
func InvalidToken(resourceMetadataURL string) (refuse func(http.ResponseWriter, *http.Request), ok bool) {
	if !ValidAttr(resourceMetadataURL) {
		return nil, false
	}
	attrs := ` error="invalid_token"`
	if resourceMetadataURL != "" {
		attrs += `, resource_metadata="` + resourceMetadataURL + `"`
	}
	return func(w http.ResponseWriter, r *http.Request) {
		scheme := "Bearer"
		if name, _, _ := strings.Cut(r.Header.Get("Authorization"), " "); strings.EqualFold(name, "DPoP") {
			scheme = "DPoP"
		}
		w.Header().Set("WWW-Authenticate", scheme+attrs)
		WriteError(w, http.StatusUnauthorized, "invalid_token")
	}, true
}
