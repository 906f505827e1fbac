package introspection

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The three classes of failure. Every error returned by [Verifier.Verify]
// satisfies errors.Is with exactly one of them, or with context.Canceled or
// context.DeadlineExceeded when the caller's own context ended.
var (
	// ErrInvalidToken means the token itself is not acceptable: RFC 6750
	// §3.1 invalid_token. The more specific reasons below wrap it.
	ErrInvalidToken = errors.New("introspection: invalid token")
	// ErrInsufficientScope means the token lacks a required scope: RFC 6750
	// §3.1 insufficient_scope. The error is a [*ScopeError].
	ErrInsufficientScope = errors.New("introspection: insufficient scope")
	// ErrIntrospectionFailed means the authorization server gave no usable
	// answer. The error is an [*IntrospectionError].
	ErrIntrospectionFailed = errors.New("introspection: introspection failed")
)

// ErrRequestTooLarge means a request body was too large for an
// [OperationFunc] to read; [RequireBearerToken] answers it with 413.
var ErrRequestTooLarge = errors.New("introspection: request body too large")

// Specific reasons a token is rejected. Each satisfies
// errors.Is(err, ErrInvalidToken).
var (
	ErrMalformedToken   = fmt.Errorf("%w: token is empty, longer than 4096 bytes or not an RFC 6750 b64token", ErrInvalidToken)
	ErrTokenInactive    = fmt.Errorf("%w: token is not active", ErrInvalidToken)
	ErrTokenExpired     = fmt.Errorf("%w: token has expired", ErrInvalidToken)
	ErrTokenNotYetValid = fmt.Errorf("%w: token is not valid yet", ErrInvalidToken)
	ErrIssuerMismatch   = fmt.Errorf("%w: token issuer is not the expected issuer", ErrInvalidToken)
	// ErrAudienceMismatch means no value of the token's aud is in
	// Settings.Audience. URL values compare with the scheme and host in any
	// case and an explicit default port (:443 for https, :80 for http) equal
	// to none, as the MCP authorization spec asks; paths compare exactly.
	ErrAudienceMismatch = fmt.Errorf("%w: token audience does not include this resource", ErrInvalidToken)
	ErrNotAccessToken   = fmt.Errorf("%w: token is not an access token", ErrInvalidToken)
	// ErrProofRequired means the token is sender-constrained, bound by its
	// cnf member to a DPoP key (RFC 9449) or to a client certificate
	// (RFC 8705), or of token_type DPoP, and came without the proof of
	// possession that binding asks for: as a plain bearer token, which
	// RFC 9449 §7.2 and RFC 8705 §3 forbid accepting.
	ErrProofRequired = fmt.Errorf("%w: token is sender-constrained and came without its proof of possession", ErrInvalidToken)
	// ErrProofMismatch means the DPoP proof's key, or the TLS client
	// certificate, is not the one the token is bound to (RFC 9449 §7.1,
	// RFC 8705 §3), or the token is of token_type DPoP with no cnf.jkt to
	// compare the proof's key with.
	ErrProofMismatch = fmt.Errorf("%w: proof of possession is for another key or certificate than the token's", ErrInvalidToken)
	// ErrTokenNotBound means a token came with a DPoP proof but is not
	// bound to a DPoP key, or came without one while Settings.DPoP is
	// DPoPRequired.
	ErrTokenNotBound = fmt.Errorf("%w: token is not DPoP-bound", ErrInvalidToken)
	// ErrInvalidDPoPProof means the DPoP proof is missing, malformed or
	// fails a check of RFC 9449 §4.3; the middleware answers it with
	// error="invalid_dpop_proof". A failed check is a [*DPoPProofError].
	ErrInvalidDPoPProof = fmt.Errorf("%w: invalid DPoP proof", ErrInvalidToken)
	// ErrUseDPoPNonce means the proof lacks the server's nonce, or carries
	// one that is not valid now (RFC 9449 §9); the middleware answers it
	// with error="use_dpop_nonce" and a fresh DPoP-Nonce header.
	ErrUseDPoPNonce = fmt.Errorf("%w: DPoP proof lacks a fresh server nonce", ErrInvalidDPoPProof)
	// ErrProofReplayed means a proof with the same key and jti was accepted
	// before, within the window in which its iat is acceptable.
	ErrProofReplayed = fmt.Errorf("%w: DPoP proof was used before", ErrInvalidDPoPProof)
)

// DPoPProofError reports the check of RFC 9449 §4.3 that a DPoP proof
// failed. It satisfies errors.Is with [ErrInvalidDPoPProof] and
// [ErrInvalidToken]. Reason never holds the token or the proof.
type DPoPProofError struct {
	Reason string
}

func (e *DPoPProofError) Error() string { return "introspection: invalid DPoP proof: " + e.Reason }

// Unwrap returns [ErrInvalidDPoPProof].
func (e *DPoPProofError) Unwrap() error { return ErrInvalidDPoPProof }

// ScopeError reports the required scopes a token lacks.
type ScopeError struct {
	Missing []string // required scopes not granted
	Granted []string // scopes the token has
}

func (e *ScopeError) Error() string {
	return "introspection: insufficient scope: missing " + strings.Join(e.Missing, " ")
}

// Is reports whether target is [ErrInsufficientScope].
func (e *ScopeError) Is(target error) bool { return target == ErrInsufficientScope }

// FailureKind classifies an [IntrospectionError].
type FailureKind string

const (
	FailureTransport   FailureKind = "transport"    // no HTTP answer: dial, TLS, reset
	FailureTimeout     FailureKind = "timeout"      // Settings.Timeout elapsed
	FailureStatus      FailureKind = "status"       // an HTTP status other than 200 and not a redirect
	FailureRedirect    FailureKind = "redirect"     // a 3xx answer; redirects are never followed
	FailureContentType FailureKind = "content_type" // a Content-Type that is not JSON
	FailureTooLarge    FailureKind = "too_large"    // a body over 1 MiB
	FailureMalformed   FailureKind = "malformed"    // not a JSON object of the RFC 7662 shape
	FailurePanic       FailureKind = "panic"        // the HTTPClient's transport, Settings.Now or Settings.ScopeMatcher panicked
	FailureReplayStore FailureKind = "replay_store" // Settings.ReplayStore failed, so a DPoP proof's jti could not be recorded
	FailureUnavailable FailureKind = "unavailable"  // the circuit breaker is open: no request was sent; RetryAfter is the time to the next probe
	// FailureDiscovery: the issuer's metadata could not be fetched or is
	// unusable (Settings.IntrospectionURL empty), so no introspection
	// request was sent. While the verifier backs off after such a failure,
	// Verify fails with it at once, RetryAfter the time to the next
	// attempt. StatusCode is the metadata URL's status, if any.
	FailureDiscovery FailureKind = "discovery"
)

// IntrospectionError reports that the authorization server gave no usable
// answer. It satisfies errors.Is(err, ErrIntrospectionFailed). It never
// contains the token or the client secret: where the server's text quotes
// them, they are replaced by REDACTED.
type IntrospectionError struct {
	Kind FailureKind
	// StatusCode is the HTTP status, or 0 when no answer arrived.
	StatusCode int
	// ErrorCode and ErrorDescription are the RFC 6749 §5.2 error and
	// error_description members, when the server sent them: shortened to
	// 128 and 256 bytes (marked with "…"), with control characters replaced
	// by spaces, and the token, the client secret and the Basic credentials
	// by REDACTED.
	ErrorCode        string
	ErrorDescription string
	// RetryAfter is the server's Retry-After as a delay, when it sent one:
	// never negative, and at most one hour (a longer or unparsable value
	// from the server is capped). For FailureUnavailable it is the time
	// until the circuit breaker lets the next probe through.
	RetryAfter time.Duration
	// Err is the underlying cause, if any.
	Err error
}

func (e *IntrospectionError) Error() string {
	var b strings.Builder
	b.WriteString("introspection: introspection failed (")
	b.WriteString(string(e.Kind))
	b.WriteString(")")
	if e.StatusCode != 0 {
		b.WriteString(": HTTP ")
		b.WriteString(strconv.Itoa(e.StatusCode))
	}
	if e.ErrorCode != "" {
		b.WriteString(": ")
		b.WriteString(e.ErrorCode)
		if e.ErrorDescription != "" {
			b.WriteString(" (")
			b.WriteString(e.ErrorDescription)
			b.WriteString(")")
		}
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns [ErrIntrospectionFailed] and the cause.
func (e *IntrospectionError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrIntrospectionFailed}
	}
	return []error{ErrIntrospectionFailed, e.Err}
}
