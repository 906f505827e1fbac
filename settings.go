package introspection

import (
	"crypto/x509"
	"errors"
	"fmt"
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
// Settings never prints its ClientSecret: fmt verbs and log/slog show it
// redacted.
type Settings struct {
	// IntrospectionURL is the authorization server's RFC 7662 endpoint.
	// It must be https, or http to a loopback host (127.0.0.0/8, ::1,
	// localhost) unless AllowInsecureHTTP is set. Required.
	IntrospectionURL string
	// ClientID and ClientSecret are the resource server's own credentials
	// at the authorization server. Both are required.
	ClientID     string
	ClientSecret string
	// ClientAuthMethod selects how the credentials are sent.
	// Zero means ClientSecretBasic.
	ClientAuthMethod ClientAuthMethod
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
	// Issuer, if set, must equal the token's iss.
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
	// redirect, an answer that is not RFC 7662); a 4xx or any answer of the
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
// nonce keys, and any user information written into IntrospectionURL or
// PublicBaseURL, redacted.
func (s Settings) String() string {
	return fmt.Sprintf("introspection.Settings{IntrospectionURL:%q ClientID:%q ClientSecret:%s ClientAuthMethod:%q Timeout:%v RequiredScopes:%q Audience:%q Issuer:%q Leeway:%v CacheTTL:%v MaxCacheSize:%d NegativeCacheTTL:%v LocalCacheTTL:%v StaleIfError:%v AllowInsecureHTTP:%t ScopeMatcher:%s DPoP:%q DPoPAlgorithms:%q DPoPProofWindow:%v DPoPNonceKeys:%s PublicBaseURL:%q TrustForwardedHeaders:%t BreakerThreshold:%d BreakerMinBackoff:%v BreakerMaxBackoff:%v}",
		displayURL(s.IntrospectionURL), s.ClientID, redact(s.ClientSecret), s.ClientAuthMethod, s.Timeout,
		s.RequiredScopes, s.Audience, s.Issuer, s.Leeway, s.CacheTTL, s.MaxCacheSize,
		s.NegativeCacheTTL, s.LocalCacheTTL, s.StaleIfError, s.AllowInsecureHTTP, s.scopeMatching(),
		s.DPoP, s.DPoPAlgorithms, s.DPoPProofWindow, redactKeys(s.DPoPNonceKeys),
		displayURL(s.PublicBaseURL), s.TrustForwardedHeaders,
		s.BreakerThreshold, s.BreakerMinBackoff, s.BreakerMaxBackoff)
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

// LogValue implements [slog.LogValuer] with the client secret, and any user
// information written into IntrospectionURL, redacted.
func (s Settings) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("introspection_url", displayURL(s.IntrospectionURL)),
		slog.String("client_id", s.ClientID),
		slog.String("client_secret", redact(s.ClientSecret)),
		slog.String("client_auth_method", string(s.ClientAuthMethod)),
		slog.Duration("timeout", s.Timeout),
		slog.Any("required_scopes", s.RequiredScopes),
		slog.Any("audience", s.Audience),
		slog.String("issuer", s.Issuer),
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
// parsed endpoint.
func (s Settings) validate() (Settings, *url.URL, error) {
	if s.IntrospectionURL == "" {
		return s, nil, &settingError{"introspection: IntrospectionURL is required",
			func(p string) string { return "introspection: " + p + "URL is not set" }}
	}
	endpoint, err := checkEndpoint(s.IntrospectionURL, s.AllowInsecureHTTP)
	if err != nil {
		return s, nil, err
	}
	if s.ClientID == "" {
		return s, nil, &settingError{"introspection: ClientID is required",
			func(p string) string { return "introspection: " + p + "CLIENT_ID is not set" }}
	}
	if s.ClientSecret == "" {
		return s, nil, &settingError{"introspection: ClientSecret is required",
			func(p string) string {
				return "introspection: " + p + "CLIENT_SECRET or " + p + "CLIENT_SECRET_FILE is not set"
			}}
	}
	switch s.ClientAuthMethod {
	case "":
		s.ClientAuthMethod = ClientSecretBasic
	case ClientSecretBasic, ClientSecretPost:
	default:
		want := fmt.Sprintf("%q (want %q or %q)", s.ClientAuthMethod, ClientSecretBasic, ClientSecretPost)
		return s, nil, &settingError{"introspection: unsupported ClientAuthMethod " + want,
			func(p string) string { return "introspection: unsupported " + p + "CLIENT_AUTH_METHOD " + want }}
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
	if s, err = s.validateDPoP(); err != nil {
		return s, nil, err
	}
	if s, err = s.validateBreaker(); err != nil {
		return s, nil, err
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

// checkEndpoint parses raw and rejects URLs that would leak credentials or
// are not usable. Its errors never repeat user information written into
// raw: they show raw through displayURL.
func checkEndpoint(raw string, allowInsecure bool) (*url.URL, error) {
	shown := strconv.Quote(displayURL(raw))
	u, err := url.Parse(raw)
	if err != nil {
		reason := parseReason(err, raw)
		return nil, &settingError{"introspection: invalid IntrospectionURL " + shown + reason,
			func(p string) string { return "introspection: invalid " + p + "URL " + shown + reason }}
	}
	if u.Host == "" || u.Hostname() == "" {
		return nil, &settingError{"introspection: IntrospectionURL " + shown + " has no host",
			func(p string) string { return "introspection: " + p + "URL " + shown + " has no host" }}
	}
	if u.User != nil {
		return nil, &settingError{"introspection: IntrospectionURL must not carry credentials; use ClientID and ClientSecret",
			func(p string) string {
				return "introspection: " + p + "URL must not carry credentials; use " + p + "CLIENT_ID and " + p + "CLIENT_SECRET"
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
		return nil, &settingError{"introspection: IntrospectionURL " + shown + insecure + "AllowInsecureHTTP",
			func(p string) string {
				return "introspection: " + p + "URL " + shown + insecure + p + "ALLOW_INSECURE_HTTP=true"
			}}
	default:
		return nil, &settingError{"introspection: IntrospectionURL " + shown + " must use https",
			func(p string) string { return "introspection: " + p + "URL " + shown + " must use https" }}
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
// holding the secret), CLIENT_AUTH_METHOD, TIMEOUT, REQUIRED_SCOPES,
// AUDIENCE, ISSUER, LEEWAY, CACHE_TTL, MAX_CACHE_SIZE, NEGATIVE_CACHE_TTL,
// STALE_IF_ERROR, LOCAL_CACHE_TTL (negative turns the local tier off),
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
// bad value, or a secret file that holds no secret, is an error that names
// the variable. Unset variables leave the field zero;
// the result is validated by [NewVerifier], not here: pass its error to
// [EnvError] to name the variable to set.
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
		b, err := os.ReadFile(file)
		if err != nil {
			return s, fmt.Errorf("introspection: %sCLIENT_SECRET_FILE: %w", prefix, err)
		}
		s.ClientSecret = strings.TrimRight(string(b), "\r\n")
		if s.ClientSecret == "" {
			return s, fmt.Errorf("introspection: %sCLIENT_SECRET_FILE names a file that holds no secret", prefix)
		}
	}
	s.ClientAuthMethod = ClientAuthMethod(get("CLIENT_AUTH_METHOD"))
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
