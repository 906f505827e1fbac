package introspection

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// ClientAuthMethod is how the resource server authenticates itself to the
// introspection endpoint (RFC 7662 §2.1, RFC 6749 §2.3.1).
type ClientAuthMethod string

const (
	// ClientSecretBasic sends the client id and secret in an HTTP Basic
	// Authorization header, each form-encoded first as RFC 6749 §2.3.1
	// requires. It is the default.
	ClientSecretBasic ClientAuthMethod = "client_secret_basic"
	// ClientSecretPost sends client_id and client_secret as form fields and
	// no Authorization header.
	ClientSecretPost ClientAuthMethod = "client_secret_post"
)

// Defaults and bounds of Settings.DiscoveryRefresh.
const (
	// DefaultDiscoveryRefresh is how often discovered metadata is fetched
	// again when Settings.DiscoveryRefresh is zero.
	DefaultDiscoveryRefresh = 24 * time.Hour
	// MinDiscoveryRefresh is the shortest Settings.DiscoveryRefresh.
	MinDiscoveryRefresh = time.Minute
)

// Defaults applied by [NewVerifier] to zero-valued [Settings] fields.
const (
	DefaultTimeout         = 10 * time.Second
	DefaultMaxCacheSize    = 10_000
	DefaultDPoPProofWindow = 5 * time.Minute
)

// MaxDPoPProofWindow bounds Settings.DPoPProofWindow: a longer window would
// make the replay store keep proof identifiers for longer than it is
// useful to accept a proof.
const MaxDPoPProofWindow = time.Hour

// DPoPMode says which presentations of a token a [Verifier] accepts
// (RFC 9449 §7).
type DPoPMode string

const (
	// DPoPAllowed accepts the Bearer scheme for tokens that are not bound
	// to a DPoP key and the DPoP scheme, with a valid proof, for tokens
	// that are. It is the default.
	DPoPAllowed DPoPMode = "allowed"
	// DPoPOff refuses the DPoP scheme, as an unknown one; tokens bound to a
	// DPoP key are then refused with ErrProofRequired.
	DPoPOff DPoPMode = "off"
	// DPoPRequired accepts only DPoP-bound tokens, presented with the DPoP
	// scheme and a valid proof; the Bearer scheme is refused, as an
	// unknown one.
	DPoPRequired DPoPMode = "required"
)

// Settings configures a [Verifier]. The zero value of every optional field is
// documented and safe. [NewVerifier] copies the settings, so changing them
// afterwards has no effect on the verifier.
//
// Settings never prints its ClientSecret, PrivateKey or the key of
// TLSClientCertificate: fmt verbs and log/slog show them redacted.
type Settings struct {
	// IntrospectionURL is the authorization server's RFC 7662 endpoint.
	// It must be https, or http to a loopback host (127.0.0.0/8, ::1,
	// localhost) unless AllowInsecureHTTP is set. Empty means the endpoint
	// is discovered from the metadata of Issuer, which is then required
	// (see [Verifier.Discover]).
	IntrospectionURL string
	// ClientID is the resource server's client identifier at the
	// authorization server. Required.
	ClientID string
	// ClientSecret is the resource server's secret at the authorization
	// server, for ClientSecretBasic, ClientSecretPost and ClientSecretJWT
	// (at least MinClientSecretJWTSize bytes). It is required unless
	// PrivateKey or TLSClientCertificate authenticates the client.
	ClientSecret string
	// ClientAuthMethod selects how the client authenticates itself. Zero
	// means: with IntrospectionURL, ClientSecretBasic when ClientSecret is
	// set, else PrivateKeyJWT when PrivateKey is set, else TLSClientAuth
	// when TLSClientCertificate is set. With discovery, zero means the
	// first of PrivateKeyJWT, TLSClientAuth, SelfSignedTLSClientAuth (for a
	// self-signed TLSClientCertificate, SelfSignedTLSClientAuth before
	// TLSClientAuth), ClientSecretBasic, ClientSecretPost and
	// ClientSecretJWT that the server lists and the credentials allow, and
	// whose client assertions are signed with an algorithm the server
	// lists, if it lists any; when the server lists no methods, the first
	// the credentials allow of ClientSecretBasic, PrivateKeyJWT and the TLS
	// method that suits the certificate. The method is chosen again at
	// every fetch of the metadata, and logged at info level when it
	// changes. With discovery, a method set here that the server does not
	// list, or whose signing algorithm it does not list, fails the fetch
	// with [FailureDiscovery] (a failed refresh keeps the last good
	// metadata).
	ClientAuthMethod ClientAuthMethod
	// PrivateKey signs the client assertions of PrivateKeyJWT (RFC 7523
	// §2.2), a new one for every request. Required for PrivateKeyJWT. fmt
	// and log/slog show only its algorithm and key id.
	PrivateKey *SigningKey
	// TLSClientCertificate is the certificate and key the verifier
	// presents to the authorization server for TLSClientAuth and
	// SelfSignedTLSClientAuth (RFC 8705 §2), not to be confused with
	// ClientCertificate, which reads the certificate of an incoming
	// request. With HTTPClient set, its Transport must be an
	// *http.Transport or nil: the verifier uses a clone of it (of
	// http.DefaultTransport for nil) with the certificate added; a
	// transport that sets DialTLSContext or DialTLS is refused, since
	// net/http then ignores the TLS configuration the certificate would be
	// added to (present it in that dialer instead). For the
	// TLS methods one of TLSClientCertificate and HTTPClient is required;
	// with HTTPClient alone, its transport must present the certificate.
	// fmt and log/slog show only whether it is set.
	TLSClientCertificate *tls.Certificate
	// ClientAssertionAudience is the aud of client assertions. Empty means
	// Issuer (with discovery, the issuer the metadata names, which equals
	// it), or IntrospectionURL when Issuer is empty.
	ClientAssertionAudience string
	// DiscoveryRefresh is how often the metadata discovered from Issuer is
	// fetched again; a failed refresh keeps the last good metadata. Zero
	// means DefaultDiscoveryRefresh (24 hours); at least
	// MinDiscoveryRefresh (1 minute).
	DiscoveryRefresh time.Duration
	// Timeout bounds each introspection request, including reading the
	// answer. Zero means 10 seconds.
	Timeout time.Duration
	// BreakerThreshold is the number of consecutive failures of the
	// authorization server (no answer, a timeout, a 5xx or 429 status, an
	// answer that is not a usable one) after which its circuit breaker
	// opens: Verify then fails at once with [FailureUnavailable], sending
	// nothing, until a probe request succeeds (see [BreakerState]).
	// Zero means DefaultBreakerThreshold (5); negative means no breaker.
	BreakerThreshold int
	// BreakerMinBackoff is how long the breaker stays open the first time,
	// before its first probe. Zero means 1 second.
	BreakerMinBackoff time.Duration
	// BreakerMaxBackoff caps the breaker's backoff, which doubles with
	// every failed probe, each interval jittered by up to 20% either way
	// within [BreakerMinBackoff, BreakerMaxBackoff]; a longer Retry-After
	// of the server is honoured, up to an hour. Zero means 1 minute; at
	// most one hour, and not shorter than BreakerMinBackoff.
	BreakerMaxBackoff time.Duration
	// RequiredScopes must all be granted to the token, each exactly or,
	// with ScopeMatcher set, through a scope that implies it. Each must be
	// an RFC 6749 §3.3 scope-token (%x21 / %x23-5B / %x5D-7E). Nil means
	// none.
	RequiredScopes []string
	// Audience, if set, must share at least one value with the token's aud.
	// URL values match with the scheme and host in any case and with or
	// without an explicit default port (see [ErrAudienceMismatch]); other
	// values match exactly. The MCP authorization spec requires this check:
	// set it to the canonical URL of the MCP server.
	Audience []string
	// Issuer, if set, must equal the token's iss. With IntrospectionURL
	// empty, the verifier also discovers the introspection endpoint from
	// its metadata (RFC 8414 §3, OpenID Connect Discovery 1.0 §4): the
	// issuer must then satisfy the rule of IntrospectionURL and have no
	// query or fragment.
	Issuer string
	// Leeway is the clock skew allowed when checking exp and nbf.
	// Zero means none.
	Leeway time.Duration
	// HTTPClient sends the introspection requests. If nil, the verifier uses
	// its own client that keeps connections alive between calls. Redirects
	// are never followed, also with a caller's client.
	HTTPClient *http.Client
	// Logger receives a debug record for each rejected token, warnings for
	// failed introspection and cache errors, and an error record, with its
	// stack, for each panic recovered in a dependency. The circuit breaker
	// logs each transition once: opening at warn, the others at info. If
	// nil, nothing is logged.
	// Neither the token nor the secret is ever logged.
	Logger *slog.Logger
	// Observer is told what the verifier does, for metrics and traces:
	// each verdict with its reason, cache results, introspection requests
	// with their status and duration, circuit breaker transitions, cache
	// errors and fetches of the issuer's metadata (see [Observer]; the
	// otel module implements it with
	// OpenTelemetry). A panic in it is recovered and never changes a
	// verdict; a slow one slows every verification. If nil, nothing is
	// told and nothing is spent on it.
	Observer Observer
	// Now returns the current time for exp, nbf and cache expiry checks,
	// and the circuit breaker's intervals.
	// If nil, time.Now is used.
	Now func() time.Time
	// AllowInsecureHTTP permits an http:// IntrospectionURL to a host that
	// is not loopback. The token and the client secret then cross the
	// network in clear text; use it only on a trusted private network.
	AllowInsecureHTTP bool

	// CacheTTL is how long an active answer is kept. An entry never
	// outlives the token's exp (RFC 7662 §4). Zero means no caching of
	// active answers: every Verify asks the server.
	CacheTTL time.Duration
	// MaxCacheSize bounds the built-in cache. Zero means 10,000 entries
	// when caching is on. Negative is an error.
	MaxCacheSize int
	// NegativeCacheTTL is how long an inactive answer is kept. Zero means
	// inactive answers are not cached. It works without CacheTTL.
	NegativeCacheTTL time.Duration
	// Cache, if set, stores answers instead of the built-in in-memory
	// cache, for example a store shared by several replicas. It is used
	// only when CacheTTL or NegativeCacheTTL is set.
	Cache Cache
	// LocalCacheTTL is, with a Cache, how long answers are also kept in
	// a built-in cache of MaxCacheSize entries in front of it, the local
	// tier, so that hot tokens do not call the Cache: an entry lives at
	// most LocalCacheTTL, never past the Cache's entry's end or the
	// token's exp, and at most UnsubscribedLocalCacheTTL while a Cache
	// that is an [Invalidator] cannot deliver invalidations.
	// [Verifier.Forget] drops an entry from both tiers. Zero means
	// DefaultLocalCacheTTL (5 seconds); negative means no local tier:
	// every Verify calls the Cache. Without a Cache it changes nothing.
	LocalCacheTTL time.Duration
	// StaleIfError, if set, lets the verifier use a cached answer whose
	// entry ended less than StaleIfError ago when the authorization server
	// cannot answer (no answer in time, a transport error, a 5xx or 429, a
	// redirect, an answer that is not RFC 7662, metadata that cannot be
	// fetched with discovery); a 4xx or any answer of the
	// server, active false included, is never replaced by a stale one.
	// Every check runs again on a stale answer at the current time, an
	// active one is never used at or past the token's exp, and the
	// accepted token has Stale set. Entries are kept this much longer,
	// within MaxCacheSize. It needs CacheTTL. Zero means off; negative, or
	// longer than MaxStaleIfError (a week), is an error.
	StaleIfError time.Duration

	// ScopeMatcher decides whether a granted scope implies a required one,
	// for scope hierarchies: [HierarchicalScopes] for the "a:b:c"
	// convention, [ScopeImplications] for a declared table, or a function
	// of your own. It applies to RequiredScopes, to [Verifier.CheckScopes]
	// and to the scopes [RequireBearerToken] checks. A scope granted
	// exactly always satisfies its requirement. Nil means exact matching
	// only.
	ScopeMatcher ScopeMatcher

	// DPoP selects which schemes [RequireBearerToken] accepts: DPoPAllowed
	// (the zero value), DPoPOff or DPoPRequired. Under DPoPRequired,
	// [Verifier.Verify] refuses every token, as it holds no proof.
	DPoP DPoPMode
	// DPoPAlgorithms are the JWS alg values accepted in DPoP proofs, each
	// one of DefaultDPoPAlgorithms. Nil means all of them.
	DPoPAlgorithms []string
	// DPoPProofWindow is how far a proof's iat may lie from now, either
	// way, on top of Leeway. Zero means DefaultDPoPProofWindow (5 minutes,
	// as the MCP DPoP extension asks); at most MaxDPoPProofWindow.
	DPoPProofWindow time.Duration
	// ReplayStore records the jti of every accepted DPoP proof, so that a
	// proof is accepted once. Share one, such as the rediscache module's,
	// between replicas. Nil means a store in this verifier's memory of
	// DefaultReplayStoreSize entries.
	ReplayStore ReplayStore
	// DPoPNonceKeys, if set, make proofs carry a server nonce (RFC 9449
	// §8): a proof without a valid one is refused with use_dpop_nonce and
	// a fresh DPoP-Nonce header. Nonces are HMACs of the time, so replicas
	// with the same keys agree without shared state. The first key makes
	// nonces and every key checks them, so that keys can rotate. Each key
	// must have at least 32 bytes. fmt and log/slog show only their count.
	DPoPNonceKeys [][]byte
	// DPoPNonceLifetime is how long a nonce is accepted. Zero means 5
	// minutes; it must lie between 2 seconds and 24 hours. A nonce the
	// middleware hands out stays valid for at least half of it.
	DPoPNonceLifetime time.Duration
	// PublicBaseURL is the scheme, host, port and optional path prefix at
	// which clients reach this server, such as "https://mcp.example.com"
	// or "https://example.com/tools" behind a proxy that strips "/tools".
	// A DPoP proof's htu must equal it joined with the request's path.
	// Empty means the URL the request arrived at: https when it came over
	// TLS, else http, with the Host header.
	PublicBaseURL string
	// TrustForwardedHeaders, without PublicBaseURL, takes the scheme and
	// host of the request URL from the first X-Forwarded-Proto and
	// X-Forwarded-Host headers. Set it only behind a proxy that sets both
	// and drops them from clients.
	TrustForwardedHeaders bool
	// ClientCertificate returns the TLS client certificate of a request,
	// for certificate-bound tokens (RFC 8705 §3): set it behind a
	// TLS-terminating proxy that passes the certificate on. Nil means the
	// first certificate of r.TLS.PeerCertificates. The server must ask
	// for certificates (tls.Config.ClientAuth RequestClientCert or
	// stronger).
	ClientCertificate func(r *http.Request) (*x509.Certificate, error)
}

// String returns a description of s with the client secret, the DPoP
// nonce keys, the private key (shown as its algorithm and key id), the TLS
// client certificate (shown as set or none), and any user information
// written into IntrospectionURL, Issuer, ClientAssertionAudience or
// PublicBaseURL, redacted.
func (s Settings) String() string {
	return fmt.Sprintf("introspection.Settings{IntrospectionURL:%q ClientID:%q ClientSecret:%s ClientAuthMethod:%q PrivateKey:%s TLSClientCertificate:%s ClientAssertionAudience:%q DiscoveryRefresh:%v Timeout:%v RequiredScopes:%q Audience:%q Issuer:%q Leeway:%v CacheTTL:%v MaxCacheSize:%d NegativeCacheTTL:%v LocalCacheTTL:%v StaleIfError:%v AllowInsecureHTTP:%t ScopeMatcher:%s DPoP:%q DPoPAlgorithms:%q DPoPProofWindow:%v DPoPNonceKeys:%s PublicBaseURL:%q TrustForwardedHeaders:%t BreakerThreshold:%d BreakerMinBackoff:%v BreakerMaxBackoff:%v}",
		displayURL(s.IntrospectionURL), s.ClientID, redact(s.ClientSecret), s.ClientAuthMethod,
		s.privateKey(), s.tlsCertificate(), displayURL(s.ClientAssertionAudience), s.DiscoveryRefresh, s.Timeout,
		s.RequiredScopes, s.Audience, displayURL(s.Issuer), s.Leeway, s.CacheTTL, s.MaxCacheSize,
		s.NegativeCacheTTL, s.LocalCacheTTL, s.StaleIfError, s.AllowInsecureHTTP, s.scopeMatching(),
		s.DPoP, s.DPoPAlgorithms, s.DPoPProofWindow, redactKeys(s.DPoPNonceKeys),
		displayURL(s.PublicBaseURL), s.TrustForwardedHeaders,
		s.BreakerThreshold, s.BreakerMinBackoff, s.BreakerMaxBackoff)
}

// privateKey describes s.PrivateKey by its redacted form, or "none".
func (s Settings) privateKey() string {
	if s.PrivateKey == nil {
		return "none"
	}
	return s.PrivateKey.String()
}

// tlsCertificate says whether s.TLSClientCertificate is set: "set" or
// "none", never the certificate or its key.
func (s Settings) tlsCertificate() string {
	if s.TLSClientCertificate == nil {
		return "none"
	}
	return "set"
}

// redactKeys describes keys by their count alone.
func redactKeys(keys [][]byte) string {
	if len(keys) == 0 {
		return "none"
	}
	return strconv.Itoa(len(keys)) + " REDACTED"
}

// scopeMatching says whether s has a ScopeMatcher: "custom" when set,
// "exact" when nil.
func (s Settings) scopeMatching() string {
	if s.ScopeMatcher != nil {
		return "custom"
	}
	return "exact"
}

// Format implements [fmt.Formatter] so that every verb, %#v and %x
// included, prints the redacted form of [Settings.String].
func (s Settings) Format(f fmt.State, verb rune) {
	fmt.Fprint(f, s.String())
}

// LogValue implements [slog.LogValuer] with the client secret, the private
// key, the TLS client certificate, the DPoP nonce keys, and any user
// information written into IntrospectionURL, Issuer,
// ClientAssertionAudience or PublicBaseURL, redacted.
func (s Settings) LogValue() slog.Value {
	key := slog.StringValue("none")
	if s.PrivateKey != nil {
		key = s.PrivateKey.LogValue()
	}
	return slog.GroupValue(
		slog.String("introspection_url", displayURL(s.IntrospectionURL)),
		slog.String("client_id", s.ClientID),
		slog.String("client_secret", redact(s.ClientSecret)),
		slog.String("client_auth_method", string(s.ClientAuthMethod)),
		slog.Attr{Key: "private_key", Value: key},
		slog.String("tls_client_certificate", s.tlsCertificate()),
		slog.String("client_assertion_audience", displayURL(s.ClientAssertionAudience)),
		slog.Duration("discovery_refresh", s.DiscoveryRefresh),
		slog.Duration("timeout", s.Timeout),
		slog.Any("required_scopes", s.RequiredScopes),
		slog.Any("audience", s.Audience),
		slog.String("issuer", displayURL(s.Issuer)),
		slog.Duration("cache_ttl", s.CacheTTL),
		slog.Duration("negative_cache_ttl", s.NegativeCacheTTL),
		slog.Duration("local_cache_ttl", s.LocalCacheTTL),
		slog.Duration("stale_if_error", s.StaleIfError),
		slog.String("scope_matcher", s.scopeMatching()),
		slog.String("dpop", string(s.DPoP)),
		slog.Any("dpop_algorithms", s.DPoPAlgorithms),
		slog.String("dpop_nonce_keys", redactKeys(s.DPoPNonceKeys)),
		slog.String("public_base_url", displayURL(s.PublicBaseURL)),
		slog.Int("breaker_threshold", s.BreakerThreshold),
		slog.Duration("breaker_min_backoff", s.BreakerMinBackoff),
		slog.Duration("breaker_max_backoff", s.BreakerMaxBackoff),
	)
}

func redact(secret string) string {
	if secret == "" {
		return `""`
	}
	return "REDACTED"
}

// validate checks s and returns a copy with defaults applied, and the
// parsed endpoint: IntrospectionURL, or with discovery (IntrospectionURL
// empty) the Issuer.
func (s Settings) validate() (Settings, *url.URL, error) {
	var endpoint *url.URL
	var err error
	switch {
	case s.IntrospectionURL != "":
		if endpoint, err = checkEndpoint(s.IntrospectionURL, s.AllowInsecureHTTP); err != nil {
			return s, nil, err
		}
	case s.Issuer != "":
		if endpoint, err = checkIssuer(s.Issuer, s.AllowInsecureHTTP); err != nil {
			return s, nil, err
		}
	default:
		return s, nil, &settingError{"introspection: IntrospectionURL is required (or Issuer, to discover it)",
			func(p string) string {
				return "introspection: " + p + "URL is not set (nor " + p + "ISSUER, to discover it)"
			}}
	}
	if s.ClientID == "" {
		return s, nil, &settingError{"introspection: ClientID is required",
			func(p string) string { return "introspection: " + p + "CLIENT_ID is not set" }}
	}
	if s, err = s.validateClientAuth(); err != nil {
		return s, nil, err
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"Timeout", s.Timeout},
		{"BreakerMinBackoff", s.BreakerMinBackoff},
		{"BreakerMaxBackoff", s.BreakerMaxBackoff},
		{"Leeway", s.Leeway},
		{"CacheTTL", s.CacheTTL},
		{"NegativeCacheTTL", s.NegativeCacheTTL},
		{"StaleIfError", s.StaleIfError},
		{"DPoPProofWindow", s.DPoPProofWindow},
		{"DPoPNonceLifetime", s.DPoPNonceLifetime},
		{"DiscoveryRefresh", s.DiscoveryRefresh},
	} {
		if d.v < 0 {
			return s, nil, fmt.Errorf("introspection: %s must not be negative, got %v", d.name, d.v)
		}
	}
	if s.MaxCacheSize < 0 {
		return s, nil, fmt.Errorf("introspection: MaxCacheSize must not be negative, got %d", s.MaxCacheSize)
	}
	if s.StaleIfError > 0 && s.CacheTTL == 0 {
		return s, nil, staleNeedsCacheTTL()
	}
	if s.StaleIfError > MaxStaleIfError {
		return s, nil, fmt.Errorf("introspection: StaleIfError %v is longer than %v", s.StaleIfError, MaxStaleIfError)
	}
	for _, sc := range s.RequiredScopes {
		if !validScope(sc) {
			q := strconv.Quote(sc)
			return s, nil, &settingError{"introspection: invalid required scope " + q,
				func(p string) string { return "introspection: " + p + "REQUIRED_SCOPES holds an invalid scope " + q }}
		}
	}
	if err = checkObserver(s.Observer); err != nil {
		return s, nil, err
	}
	if s, err = s.validateDPoP(); err != nil {
		return s, nil, err
	}
	if s, err = s.validateBreaker(); err != nil {
		return s, nil, err
	}
	if s.DiscoveryRefresh == 0 {
		s.DiscoveryRefresh = DefaultDiscoveryRefresh
	}
	if s.DiscoveryRefresh < MinDiscoveryRefresh {
		got := fmt.Sprintf(" must be at least %v, got %v", MinDiscoveryRefresh, s.DiscoveryRefresh)
		return s, nil, &settingError{"introspection: DiscoveryRefresh" + got,
			func(p string) string { return "introspection: " + p + "DISCOVERY_REFRESH" + got }}
	}
	if s.Timeout == 0 {
		s.Timeout = DefaultTimeout
	}
	if s.MaxCacheSize == 0 {
		s.MaxCacheSize = DefaultMaxCacheSize
	}
	s.RequiredScopes = append([]string(nil), s.RequiredScopes...)
	s.Audience = append([]string(nil), s.Audience...)
	return s, endpoint, nil
}

// errNoClientSecret is the error of NewVerifier for a method that needs
// ClientSecret, or no credentials at all.
func errNoClientSecret() error {
	return &settingError{"introspection: ClientSecret is required",
		func(p string) string {
			return "introspection: " + p + "CLIENT_SECRET or " + p + "CLIENT_SECRET_FILE is not set"
		}}
}

// validateClientAuth checks the client's credentials against its
// ClientAuthMethod and returns s with the method's default applied: with
// IntrospectionURL, by the credentials; with discovery, it stays empty
// until the metadata is fetched.
func (s Settings) validateClientAuth() (Settings, error) {
	if k := s.PrivateKey; k != nil {
		if _, err := newKeySigner(k); err != nil {
			msg := strings.TrimPrefix(err.Error(), "introspection: ")
			return s, &settingError{"introspection: PrivateKey: " + msg,
				func(p string) string { return "introspection: " + p + "PRIVATE_KEY_FILE: " + msg }}
		}
	}
	if c := s.TLSClientCertificate; c != nil {
		if len(c.Certificate) == 0 || c.PrivateKey == nil {
			const why = " holds no certificate or no private key"
			return s, &settingError{"introspection: TLSClientCertificate" + why,
				func(p string) string { return "introspection: " + p + "TLS_CERT_FILE" + why }}
		}
		if s.HTTPClient != nil {
			switch t := s.HTTPClient.Transport.(type) {
			case nil:
			case *http.Transport:
				//lint:ignore SA1019 a transport that still sets DialTLS is refused too
				if t != nil && (t.DialTLSContext != nil || t.DialTLS != nil) {
					// net/http ignores TLSClientConfig for HTTPS then: the
					// certificate would never be presented.
					return s, errors.New("introspection: TLSClientCertificate cannot be added to HTTPClient.Transport, whose DialTLSContext or DialTLS makes the TLS connections (net/http then ignores its TLSClientConfig); present the certificate in that dialer and leave TLSClientCertificate unset")
				}
			default:
				return s, fmt.Errorf("introspection: TLSClientCertificate needs HTTPClient.Transport to be an *http.Transport or nil, to add the certificate to a clone of it; got %T", t)
			}
		}
	}
	secret, key, cert := s.ClientSecret != "", s.PrivateKey != nil, s.TLSClientCertificate != nil
	switch s.ClientAuthMethod {
	case "":
		switch {
		case s.IntrospectionURL == "" && (secret || key || cert):
			// Chosen from the metadata at every fetch.
		case secret:
			s.ClientAuthMethod = ClientSecretBasic
		case key:
			s.ClientAuthMethod = PrivateKeyJWT
		case cert:
			s.ClientAuthMethod = TLSClientAuth
		default:
			return s, errNoClientSecret()
		}
	case ClientSecretBasic, ClientSecretPost:
		if !secret {
			return s, errNoClientSecret()
		}
	case ClientSecretJWT:
		if !secret {
			return s, errNoClientSecret()
		}
		if _, err := newSecretSigner(s.ClientSecret); err != nil {
			why := fmt.Sprintf(" must have at least %d bytes for %s (RFC 7518 §3.2)", MinClientSecretJWTSize, ClientSecretJWT)
			return s, &settingError{"introspection: ClientSecret" + why,
				func(p string) string { return "introspection: " + p + "CLIENT_SECRET" + why }}
		}
	case PrivateKeyJWT:
		if !key {
			return s, &settingError{"introspection: PrivateKey is required for " + string(PrivateKeyJWT),
				func(p string) string {
					return "introspection: " + p + "PRIVATE_KEY_FILE is not set, which " + string(PrivateKeyJWT) + " needs"
				}}
		}
	case TLSClientAuth, SelfSignedTLSClientAuth:
		if !cert && s.HTTPClient == nil {
			m := string(s.ClientAuthMethod)
			return s, &settingError{"introspection: TLSClientCertificate, or an HTTPClient that presents a certificate, is required for " + m,
				func(p string) string {
					return "introspection: " + p + "TLS_CERT_FILE and " + p + "TLS_KEY_FILE are not set, which " + m + " needs"
				}}
		}
	default:
		want := fmt.Sprintf("%q (want one of %s)", s.ClientAuthMethod, strings.Join(quoted(clientAuthMethods), ", "))
		return s, &settingError{"introspection: unsupported ClientAuthMethod " + want,
			func(p string) string { return "introspection: unsupported " + p + "CLIENT_AUTH_METHOD " + want }}
	}
	return s, nil
}

// clientAuthMethods are the methods a verifier supports.
var clientAuthMethods = []ClientAuthMethod{ClientSecretBasic, ClientSecretPost, ClientSecretJWT, PrivateKeyJWT,
	TLSClientAuth, SelfSignedTLSClientAuth}

// quoted returns each of methods in Go quotes.
func quoted(methods []ClientAuthMethod) []string {
	q := make([]string, len(methods))
	for i, m := range methods {
		q[i] = strconv.Quote(string(m))
	}
	return q
}

// checkEndpoint parses raw, the IntrospectionURL, and rejects URLs that
// would leak credentials or are not usable. Its errors never repeat user
// information written into raw: they show raw through displayURL.
func checkEndpoint(raw string, allowInsecure bool) (*url.URL, error) {
	return checkURL(raw, allowInsecure, "IntrospectionURL", "URL")
}

// checkIssuer parses raw, an Issuer to discover the endpoint from, by the
// rule of checkEndpoint; an RFC 8414 §2 issuer also has no query or
// fragment.
func checkIssuer(raw string, allowInsecure bool) (*url.URL, error) {
	u, err := checkURL(raw, allowInsecure, "Issuer", "ISSUER")
	if err != nil {
		return nil, err
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.ContainsAny(raw, "?#") {
		const why = " has a query or fragment, which an issuer identifier never has (RFC 8414 §2)"
		shown := strconv.Quote(displayURL(raw))
		return nil, &settingError{"introspection: Issuer " + shown + why,
			func(p string) string { return "introspection: " + p + "ISSUER " + shown + why }}
	}
	return u, nil
}

// checkURL parses raw, the setting name read from the environment
// variable env, and rejects URLs that would leak credentials or are not
// usable: it must be https, or http to a loopback host unless
// allowInsecure, with a host and without user information.
func checkURL(raw string, allowInsecure bool, name, env string) (*url.URL, error) {
	shown := strconv.Quote(displayURL(raw))
	u, err := url.Parse(raw)
	if err != nil {
		reason := parseReason(err, raw)
		return nil, &settingError{"introspection: invalid " + name + " " + shown + reason,
			func(p string) string { return "introspection: invalid " + p + env + " " + shown + reason }}
	}
	if u.Host == "" || u.Hostname() == "" {
		return nil, &settingError{"introspection: " + name + " " + shown + " has no host",
			func(p string) string { return "introspection: " + p + env + " " + shown + " has no host" }}
	}
	if u.User != nil {
		return nil, &settingError{"introspection: " + name + " must not carry credentials; use ClientID and ClientSecret",
			func(p string) string {
				return "introspection: " + p + env + " must not carry credentials; use " + p + "CLIENT_ID and " + p + "CLIENT_SECRET"
			}}
	}
	switch u.Scheme {
	case "https":
		return u, nil
	case "http":
		if allowInsecure || isLoopback(u.Hostname()) {
			return u, nil
		}
		const insecure = " uses http to a host that is not loopback; use https or set "
		return nil, &settingError{"introspection: " + name + " " + shown + insecure + "AllowInsecureHTTP",
			func(p string) string {
				return "introspection: " + p + env + " " + shown + insecure + p + "ALLOW_INSECURE_HTTP=true"
			}}
	default:
		return nil, &settingError{"introspection: " + name + " " + shown + " must use https",
			func(p string) string { return "introspection: " + p + env + " " + shown + " must use https" }}
	}
}

// parseReason returns ": " and what url.Parse found wrong with raw, or ""
// when it cannot say. A quoted part of the reason that could come from user
// information in raw (the text before its last "@") is shown as REDACTED.
func parseReason(err error, raw string) string {
	var ue *url.Error
	if !errors.As(err, &ue) || ue.Err == nil {
		return ""
	}
	reason := ue.Err.Error()
	at := strings.LastIndexByte(raw, '@')
	if at < 0 {
		return ": " + reason
	}
	hidden := raw[:at]
	var b strings.Builder
	b.WriteString(": ")
	for {
		i := strings.IndexByte(reason, '"')
		if i < 0 {
			b.WriteString(reason)
			break
		}
		q, err := strconv.QuotedPrefix(reason[i:])
		if err != nil {
			// An unbalanced quote: keep only what precedes it.
			b.WriteString(reason[:i])
			break
		}
		b.WriteString(reason[:i])
		if frag, _ := strconv.Unquote(q); strings.Contains(hidden, frag) {
			b.WriteString(strconv.Quote(redacted))
		} else {
			b.WriteString(q)
		}
		reason = reason[i+len(q):]
	}
	return b.String()
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// SettingsFromEnv reads settings from environment variables named prefix
// followed by URL, CLIENT_ID, CLIENT_SECRET (or CLIENT_SECRET_FILE, a file
// holding the secret), CLIENT_AUTH_METHOD (client_secret_basic,
// client_secret_post, client_secret_jwt, private_key_jwt, tls_client_auth
// or self_signed_tls_client_auth), PRIVATE_KEY_FILE (a file holding the
// private key for private_key_jwt, read by [ParseSigningKey]),
// PRIVATE_KEY_ID (the key id to send, replacing one the file names),
// TLS_CERT_FILE and TLS_KEY_FILE (PEM files of the TLS client certificate
// and its key, read by [tls.X509KeyPair]; both or neither), TIMEOUT,
// REQUIRED_SCOPES, AUDIENCE, ISSUER (with URL unset, the issuer whose
// metadata the endpoint is discovered from), DISCOVERY_REFRESH, LEEWAY,
// CACHE_TTL, MAX_CACHE_SIZE, NEGATIVE_CACHE_TTL, STALE_IF_ERROR,
// LOCAL_CACHE_TTL (negative turns the local tier off),
// ALLOW_INSECURE_HTTP, SCOPE_SEPARATOR, which sets ScopeMatcher to
// [HierarchicalScopes] with that separator (":" for the "a:b:c"
// convention; unset means exact matching), DPOP (off, allowed or
// required), DPOP_ALGORITHMS, DPOP_PROOF_WINDOW, PUBLIC_BASE_URL,
// TRUST_FORWARDED_HEADERS, BREAKER_THRESHOLD (an integer; negative turns
// the circuit breaker off), BREAKER_MIN_BACKOFF and BREAKER_MAX_BACKOFF.
// An empty prefix means "INTROSPECTION_"; a prefix
// that does not end in "_" gets one, so "NOTES" reads NOTES_URL. Durations
// are Go durations such as "5s"; lists are separated by spaces or commas.
// Values are trimmed of surrounding white space, except the secret, which
// loses only trailing line breaks, from the variable as from the file. A
// bad value, a secret file that holds no secret, or a key or certificate
// file that cannot be read or parsed, is an error that names the variable
// and never shows what the file holds. Files are read through a bound (64
// KiB for the secret, 1 MiB for each key and certificate file): a larger
// one, or a pipe that offers more, is refused after the bound and one byte
// more are read. Unset variables leave the field
// zero; the result is validated by [NewVerifier], not here: pass its error
// to [EnvError] to name the variable to set.
func SettingsFromEnv(prefix string) (Settings, error) {
	prefix = envPrefix(prefix)
	var s Settings
	get := func(name string) string { return strings.TrimSpace(os.Getenv(prefix + name)) }
	s.IntrospectionURL = get("URL")
	s.ClientID = get("CLIENT_ID")
	s.ClientSecret = strings.TrimRight(os.Getenv(prefix+"CLIENT_SECRET"), "\r\n")
	if file := get("CLIENT_SECRET_FILE"); file != "" {
		if s.ClientSecret != "" {
			return s, fmt.Errorf("introspection: set only one of %sCLIENT_SECRET and %sCLIENT_SECRET_FILE", prefix, prefix)
		}
		b, err := readFileBounded(file, maxClientSecretFileSize)
		if err != nil {
			return s, fmt.Errorf("introspection: %sCLIENT_SECRET_FILE: %w", prefix, err)
		}
		s.ClientSecret = strings.TrimRight(string(b), "\r\n")
		if s.ClientSecret == "" {
			return s, fmt.Errorf("introspection: %sCLIENT_SECRET_FILE names a file that holds no secret", prefix)
		}
	}
	s.ClientAuthMethod = ClientAuthMethod(get("CLIENT_AUTH_METHOD"))
	if err := s.readKeysFromEnv(prefix, get); err != nil {
		return s, err
	}
	s.RequiredScopes = splitList(get("REQUIRED_SCOPES"))
	s.Audience = splitList(get("AUDIENCE"))
	s.Issuer = get("ISSUER")
	s.DPoP = DPoPMode(get("DPOP"))
	s.DPoPAlgorithms = splitList(get("DPOP_ALGORITHMS"))
	s.PublicBaseURL = get("PUBLIC_BASE_URL")
	if sep := get("SCOPE_SEPARATOR"); sep != "" {
		m, err := HierarchicalScopes(sep)
		if err != nil {
			return s, fmt.Errorf("introspection: %sSCOPE_SEPARATOR=%q is not a scope separator: want one or more of the characters a scope may hold, such as \":\"", prefix, sep)
		}
		s.ScopeMatcher = m
	}

	for _, d := range []struct {
		name string
		dst  *time.Duration
	}{
		{"TIMEOUT", &s.Timeout},
		{"BREAKER_MIN_BACKOFF", &s.BreakerMinBackoff},
		{"BREAKER_MAX_BACKOFF", &s.BreakerMaxBackoff},
		{"LEEWAY", &s.Leeway},
		{"CACHE_TTL", &s.CacheTTL},
		{"NEGATIVE_CACHE_TTL", &s.NegativeCacheTTL},
		{"STALE_IF_ERROR", &s.StaleIfError},
		{"DPOP_PROOF_WINDOW", &s.DPoPProofWindow},
		{"DISCOVERY_REFRESH", &s.DiscoveryRefresh},
	} {
		v := get(d.name)
		if v == "" {
			continue
		}
		dur, err := time.ParseDuration(v)
		if err != nil || dur < 0 {
			return s, fmt.Errorf("introspection: %s%s=%q is not a non-negative duration such as 5s", prefix, d.name, v)
		}
		*d.dst = dur
	}
	if v := get("LOCAL_CACHE_TTL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return s, fmt.Errorf("introspection: %sLOCAL_CACHE_TTL=%q is not a duration such as 5s (negative turns the local tier off)", prefix, v)
		}
		s.LocalCacheTTL = d
	}
	if v := get("MAX_CACHE_SIZE"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return s, fmt.Errorf("introspection: %sMAX_CACHE_SIZE=%q is not a non-negative integer", prefix, v)
		}
		s.MaxCacheSize = n
	}
	if v := get("BREAKER_THRESHOLD"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return s, fmt.Errorf("introspection: %sBREAKER_THRESHOLD=%q is not an integer", prefix, v)
		}
		s.BreakerThreshold = n
	}
	for _, b := range []struct {
		name string
		dst  *bool
	}{
		{"ALLOW_INSECURE_HTTP", &s.AllowInsecureHTTP},
		{"TRUST_FORWARDED_HEADERS", &s.TrustForwardedHeaders},
	} {
		v := get(b.name)
		if v == "" {
			continue
		}
		on, err := strconv.ParseBool(v)
		if err != nil {
			return s, fmt.Errorf("introspection: %s%s=%q is not a boolean", prefix, b.name, v)
		}
		*b.dst = on
	}
	return s, nil
}

// readKeysFromEnv sets PrivateKey from PRIVATE_KEY_FILE and
// PRIVATE_KEY_ID, and TLSClientCertificate from TLS_CERT_FILE and
// TLS_KEY_FILE, read with get. Its errors never show what a file holds.
func (s *Settings) readKeysFromEnv(prefix string, get func(string) string) error {
	keyFile, keyID := get("PRIVATE_KEY_FILE"), get("PRIVATE_KEY_ID")
	switch {
	case keyFile != "":
		b, err := readFileBounded(keyFile, maxSigningKeyInput)
		if err != nil {
			return fmt.Errorf("introspection: %sPRIVATE_KEY_FILE: %w", prefix, err)
		}
		k, err := ParseSigningKey(b)
		if err != nil {
			return &envError{msg: "introspection: " + prefix + "PRIVATE_KEY_FILE: " +
				strings.TrimPrefix(err.Error(), "introspection: "), err: err}
		}
		if keyID != "" {
			k.KeyID = keyID
		}
		s.PrivateKey = k
	case keyID != "":
		return fmt.Errorf("introspection: %sPRIVATE_KEY_ID is set without %sPRIVATE_KEY_FILE", prefix, prefix)
	}
	certFile, certKeyFile := get("TLS_CERT_FILE"), get("TLS_KEY_FILE")
	switch {
	case certFile != "" && certKeyFile != "":
		certPEM, err := readFileBounded(certFile, maxCertificateFileSize)
		if err != nil {
			return fmt.Errorf("introspection: %sTLS_CERT_FILE: %w", prefix, err)
		}
		keyPEM, err := readFileBounded(certKeyFile, maxCertificateFileSize)
		if err != nil {
			return fmt.Errorf("introspection: %sTLS_KEY_FILE: %w", prefix, err)
		}
		// tls.X509KeyPair's errors can quote the files (the types of
		// their PEM blocks): they are not passed on.
		c, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return fmt.Errorf("introspection: %sTLS_CERT_FILE and %sTLS_KEY_FILE: not a PEM certificate and its private key", prefix, prefix)
		}
		s.TLSClientCertificate = &c
	case certFile != "":
		return fmt.Errorf("introspection: %sTLS_CERT_FILE is set without %sTLS_KEY_FILE", prefix, prefix)
	case certKeyFile != "":
		return fmt.Errorf("introspection: %sTLS_KEY_FILE is set without %sTLS_CERT_FILE", prefix, prefix)
	}
	return nil
}

// Bounds of the files SettingsFromEnv reads; PRIVATE_KEY_FILE has
// maxSigningKeyInput, ParseSigningKey's.
const (
	// maxClientSecretFileSize is the most bytes of CLIENT_SECRET_FILE.
	maxClientSecretFileSize = 64 << 10
	// maxCertificateFileSize is the most bytes of TLS_CERT_FILE and of
	// TLS_KEY_FILE: enough for a long certificate chain.
	maxCertificateFileSize = 1 << 20
)

// readFileBounded reads the file name, which must hold at most limit
// bytes. It reads no more than limit+1 bytes, so that a FIFO, a device
// or a huge file named by mistake is refused without being read to its
// end. Its errors are those of the file system, or say that the file is
// too large; they never show what the file holds.
func readFileBounded(name string, limit int) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, int64(limit)+1))
	if err != nil {
		return nil, err
	}
	if len(b) > limit {
		return nil, fmt.Errorf("the file is larger than %d bytes", limit)
	}
	return b, nil
}

// envPrefix returns the prefix SettingsFromEnv and EnvError use: the
// default for "", and prefix with a trailing "_" otherwise.
func envPrefix(prefix string) string {
	if prefix == "" {
		return "INTROSPECTION_"
	}
	if !strings.HasSuffix(prefix, "_") {
		prefix += "_"
	}
	return prefix
}

// settingError is an error of [NewVerifier] about a setting that
// [SettingsFromEnv] reads. env says the same in terms of the environment
// variable, given the prefix.
type settingError struct {
	msg string
	env func(prefix string) string
}

func (e *settingError) Error() string { return e.msg }

// envError is a settingError restated for the environment.
type envError struct {
	msg string
	err error
}

func (e *envError) Error() string { return e.msg }
func (e *envError) Unwrap() error { return e.err }

// EnvError restates err, an error of [NewVerifier] about settings read by
// [SettingsFromEnv] with prefix, in terms of the environment variable to
// set: "introspection: INTROSPECTION_CLIENT_ID is not set" rather than
// "introspection: ClientID is required". The result wraps err. Errors about
// settings that no variable sets, and other errors, are returned as they
// are; nil stays nil.
//
//	s, err := introspection.SettingsFromEnv("")
//	if err != nil {
//		return err
//	}
//	v, err := introspection.NewVerifier(s)
//	if err != nil {
//		return introspection.EnvError("", err)
//	}
func EnvError(prefix string, err error) error {
	var se *settingError
	if !errors.As(err, &se) {
		return err
	}
	return &envError{msg: se.env(envPrefix(prefix)), err: err}
}

func splitList(v string) []string {
	f := strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })
	if len(f) == 0 {
		return nil
	}
	return f
}
