package introspection

import "net/http"

// Operation is what a request asks to do, as far as scopes go.
type Operation struct {
	// Name names the operation in the error_description of a 403
	// challenge, for example `tool "echo"`. Empty means none is named.
	Name string
	// Scopes are the scopes the operation needs on top of
	// Settings.RequiredScopes and the route's MiddlewareOptions.Scopes.
	Scopes []string
}

// OperationFunc reads what r asks to do. It may read r.Body but must leave
// it for the next handler as it came. An error refuses the request: with
// 413 when it wraps [ErrRequestTooLarge], else with 400
// error="invalid_request". The error text is logged at debug level, never
// sent to the client.
type OperationFunc func(r *http.Request) (Operation, error)
