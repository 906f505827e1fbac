package introspection

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/singleflight"
)

// Verifier checks bearer tokens by asking an authorization server's RFC 7662
// introspection endpoint, optionally caching its answers.
//
// A Verifier is safe for concurrent use by multiple goroutines. Concurrent
// calls for the same token share one introspection request.
type Verifier struct {
	s              Settings
	endpoint       *url.URL // parsed IntrospectionURL; never modified
	basicAuth      []string // Authorization header value for ClientSecretBasic; never modified
	cacheNamespace string   // of the keys handed to a Cache; see CacheKey
	client         *http.Client
	transport      *http.Transport // owned by the verifier; nil with a caller's HTTPClient
	now            func() time.Time
	log            *slog.Logger

	group singleflight.Group // collapses concurrent introspections of one token
	cache store              // nil when caching is off
	stats counters
}

// NewVerifier validates s and returns a Verifier. It rejects a missing or
// unsafe IntrospectionURL, missing credentials, an unknown ClientAuthMethod,
// negative durations and a negative MaxCacheSize.
func NewVerifier(s Settings) (*Verifier, error) {
	s, endpoint, err := s.validate()
	if err != nil {
		return nil, err
	}
	v := &Verifier{
		s:              s,
		endpoint:       endpoint,
		basicAuth:      []string{basicAuthHeader(s.ClientID, s.ClientSecret)},
		cacheNamespace: cacheNamespace(endpoint.String(), s.ClientID),
		now:            s.Now,
		log:            s.Logger,
	}
	if v.now == nil {
		v.now = time.Now
	}
	if v.log == nil {
		v.log = slog.New(slog.DiscardHandler)
	}
	if s.HTTPClient != nil {
		c := *s.HTTPClient
		v.client = &c
	} else {
		v.transport = newTransport()
		v.client = &http.Client{Transport: v.transport}
	}
	// Never follow redirects: the next hop would receive the token and,
	// with client_secret_post, the secret.
	v.client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	if s.CacheTTL > 0 || s.NegativeCacheTTL > 0 {
		if s.Cache != nil {
			v.cache = &sharedStore{c: s.Cache, v: v, cooldown: cacheCooldown}
		} else {
			v.cache = newMemoryCache(s.MaxCacheSize, v.now)
		}
	}
	return v, nil
}

// newTransport returns a transport that keeps enough idle connections to the
// one introspection host for a busy server.
func newTransport() *http.Transport {
	return &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   30 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// RequiredScopes returns a copy of Settings.RequiredScopes.
func (v *Verifier) RequiredScopes() []string {
	return slices.Clone(v.s.RequiredScopes)
}

// Leeway returns Settings.Leeway: the clock skew allowed on exp and nbf.
func (v *Verifier) Leeway() time.Duration {
	return v.s.Leeway
}

// Close releases what the verifier owns: the idle connections of its own
// HTTP client. A caller's HTTPClient is left alone. The verifier runs no
// background goroutines.
func (v *Verifier) Close() error {
	if v.transport != nil {
		v.transport.CloseIdleConnections()
	}
	return nil
}

// Verify introspects token (RFC 7662 §2) and checks the answer: active, exp
// and nbf with Leeway, token_use, Issuer, Audience and RequiredScopes. It
// returns the accepted token, or an error that satisfies errors.Is with
// [ErrInvalidToken], [ErrInsufficientScope] or [ErrIntrospectionFailed],
// or with ctx's own error when ctx ends first.
//
// A cached answer is checked again at the current time on every call.
func (v *Verifier) Verify(ctx context.Context, token string) (*AccessToken, error) {
	if !validToken(token) {
		v.stats.rejected.Add(1)
		return nil, ErrMalformedToken
	}
	if err := ctx.Err(); err != nil {
		v.stats.canceled.Add(1)
		return nil, fmt.Errorf("introspection: %w", err)
	}
	if v.cache != nil {
		now := v.now()
		if a, ok := v.cache.get(ctx, token, now); ok {
			v.stats.cacheHits.Add(1)
			return v.check(a, token, false, now)
		}
		v.stats.cacheMisses.Add(1)
	}
	a, exclusive, err := v.fetch(ctx, token)
	if err != nil {
		return nil, err
	}
	return v.check(a, token, exclusive, v.now())
}

// VerifyToken is Verify without the reason, as FastMCP's verify_token: it
// returns the accepted token or nil. The reason is logged at debug level.
func (v *Verifier) VerifyToken(ctx context.Context, token string) *AccessToken {
	t, err := v.Verify(ctx, token)
	if err != nil {
		v.log.LogAttrs(ctx, slog.LevelDebug, "introspection: token rejected", slog.String("reason", err.Error()))
		return nil
	}
	return t
}

// fetch returns the authorization server's answer for token from one
// introspection request shared by concurrent callers. exclusive reports that
// no one else holds the answer: it was neither cached nor shared, so the
// caller may keep its parts without copying them.
func (v *Verifier) fetch(ctx context.Context, token string) (a *answer, exclusive bool, err error) {
	leader := false
	ch := v.group.DoChan(token, func() (any, error) {
		leader = true
		// The request must not end with the caller who started it: it runs
		// on a context of its own, bounded by Settings.Timeout in introspect.
		fctx := context.WithoutCancel(ctx)
		if v.cache != nil {
			// An earlier flight may have filled the cache since our lookup.
			if a, ok := v.cache.get(fctx, token, v.now()); ok {
				return a, nil
			}
		}
		v.stats.upstream.Add(1)
		a, err := v.introspect(fctx, token)
		if err != nil {
			var ie *IntrospectionError
			if errors.As(err, &ie) {
				v.stats.failure(ie.Kind)
			}
			v.log.LogAttrs(fctx, slog.LevelWarn, "introspection: request failed", slog.String("error", err.Error()))
			return nil, err
		}
		if v.cache != nil {
			if ttl := v.cacheTTL(a); ttl > 0 {
				v.cache.set(fctx, token, a, ttl)
			}
		}
		return a, nil
	})
	select {
	case <-ctx.Done():
		v.stats.canceled.Add(1)
		return nil, false, fmt.Errorf("introspection: %w", ctx.Err())
	case r := <-ch:
		if !leader {
			v.stats.collapsed.Add(1)
		}
		if r.Err != nil {
			v.stats.failed.Add(1)
			return nil, false, r.Err
		}
		return r.Val.(*answer), !r.Shared && v.cache == nil, nil
	}
}

// cacheTTL returns how long a may be cached: NegativeCacheTTL for an
// inactive answer; CacheTTL for an active one, never past its exp
// (RFC 7662 §4). Zero or less means not at all.
func (v *Verifier) cacheTTL(a *answer) time.Duration {
	if !a.active {
		return v.s.NegativeCacheTTL
	}
	ttl := v.s.CacheTTL
	if !a.expiresAt.IsZero() {
		ttl = min(ttl, a.expiresAt.Sub(v.now()))
	}
	return ttl
}

// check decides whether the answer a accepts token at now.
func (v *Verifier) check(a *answer, token string, exclusive bool, now time.Time) (*AccessToken, error) {
	if err := v.reject(a, now); err != nil {
		if errors.Is(err, ErrInsufficientScope) {
			v.stats.insufficientScope.Add(1)
		} else {
			v.stats.rejected.Add(1)
		}
		return nil, err
	}
	v.stats.accepted.Add(1)
	return a.accessToken(token, !exclusive), nil
}

func (v *Verifier) reject(a *answer, now time.Time) error {
	if !a.active {
		return ErrTokenInactive
	}
	if a.tokenUse != "" && a.tokenUse != "access_token" || strings.EqualFold(a.tokenType, "refresh_token") {
		return ErrNotAccessToken
	}
	if !a.expiresAt.IsZero() && !now.Before(a.expiresAt.Add(v.s.Leeway)) {
		return ErrTokenExpired
	}
	if !a.notBefore.IsZero() && now.Add(v.s.Leeway).Before(a.notBefore) {
		return ErrTokenNotYetValid
	}
	if v.s.Issuer != "" && a.issuer != v.s.Issuer {
		return ErrIssuerMismatch
	}
	if len(v.s.Audience) > 0 && !slices.ContainsFunc(a.audience, func(aud string) bool {
		return audienceIn(aud, v.s.Audience)
	}) {
		return ErrAudienceMismatch
	}
	return missingScopes(a.scopes, v.s.RequiredScopes)
}

// missingScopes returns a [*ScopeError] naming the required scopes that
// granted lacks, or nil.
func missingScopes(granted, required []string) error {
	var missing []string
	for _, r := range required {
		if !slices.Contains(granted, r) {
			missing = append(missing, r)
		}
	}
	if missing != nil {
		return &ScopeError{Missing: missing, Granted: slices.Clone(granted)}
	}
	return nil
}
