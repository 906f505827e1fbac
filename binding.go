package introspection

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// replayCallTimeout bounds a call of a caller's ReplayStore. A store that
// does not answer in time fails the request, which is then not accepted.
const replayCallTimeout = time.Second

// dpopConfig is the verifier's DPoP configuration, with defaults applied.
type dpopConfig struct {
	mode       DPoPMode
	algs       map[string]bool
	algList    []string      // in the order of the settings
	window     time.Duration // DPoPProofWindow + Leeway
	replay     ReplayStore
	ownReplay  bool         // replay is the verifier's own memory store
	nonces     *nonceSource // nil: no nonces
	publicBase string       // normalised PublicBaseURL without a trailing "/"; empty: none
}

// validateDPoP checks the DPoP and binding settings of s and applies their
// defaults.
func (s Settings) validateDPoP() (Settings, error) {
	switch s.DPoP {
	case "":
		s.DPoP = DPoPAllowed
	case DPoPAllowed, DPoPOff, DPoPRequired:
	default:
		want := fmt.Sprintf("%q (want %q, %q or %q)", s.DPoP, DPoPOff, DPoPAllowed, DPoPRequired)
		return s, &settingError{"introspection: unknown DPoP mode " + want,
			func(p string) string { return "introspection: unknown " + p + "DPOP mode " + want }}
	}
	if s.DPoPAlgorithms != nil && len(s.DPoPAlgorithms) == 0 {
		return s, errors.New("introspection: DPoPAlgorithms is empty; leave it nil for the defaults")
	}
	for _, alg := range s.DPoPAlgorithms {
		if !slices.Contains(DefaultDPoPAlgorithms, alg) {
			return s, fmt.Errorf("introspection: DPoP algorithm %q is not one of %s",
				alg, strings.Join(DefaultDPoPAlgorithms, " "))
		}
	}
	if s.DPoPAlgorithms == nil {
		s.DPoPAlgorithms = DefaultDPoPAlgorithms
	}
	var algs []string // each once, in order
	for _, alg := range s.DPoPAlgorithms {
		if !slices.Contains(algs, alg) {
			algs = append(algs, alg)
		}
	}
	s.DPoPAlgorithms = algs
	if s.DPoPProofWindow == 0 {
		s.DPoPProofWindow = DefaultDPoPProofWindow
	}
	if s.DPoPProofWindow > MaxDPoPProofWindow {
		return s, fmt.Errorf("introspection: DPoPProofWindow %v is longer than %v", s.DPoPProofWindow, MaxDPoPProofWindow)
	}
	if len(s.DPoPNonceKeys) > 0 && s.DPoP == DPoPOff {
		return s, errors.New("introspection: DPoPNonceKeys are set while DPoP is off")
	}
	if s.PublicBaseURL != "" {
		base, err := publicBase(s.PublicBaseURL)
		if err != nil {
			return s, &settingError{"introspection: invalid PublicBaseURL: " + err.Error(),
				func(p string) string { return "introspection: invalid " + p + "PUBLIC_BASE_URL: " + err.Error() }}
		}
		s.PublicBaseURL = base
	}
	return s, nil
}

// publicBase checks a PublicBaseURL and returns it normalised, without a
// trailing "/".
func publicBase(raw string) (string, error) {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return "", errors.New("not a URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return "", errors.New("want an http or https URL")
	case u.User != nil:
		return "", errors.New("it must not hold user information")
	case u.Host == "":
		return "", errors.New("it has no host")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(raw, "#"):
		return "", errors.New("it must not have a query or a fragment")
	}
	n, err := normalizeHTU(raw)
	if err != nil {
		return "", errors.New("not a URL a DPoP proof can name")
	}
	return strings.TrimSuffix(n, "/"), nil
}

// newDPoPConfig builds the DPoP configuration of validated settings.
func newDPoPConfig(s Settings, now func() time.Time) (dpopConfig, error) {
	c := dpopConfig{
		mode:       s.DPoP,
		algs:       make(map[string]bool, len(s.DPoPAlgorithms)),
		algList:    s.DPoPAlgorithms,
		window:     s.DPoPProofWindow + s.Leeway,
		replay:     s.ReplayStore,
		publicBase: s.PublicBaseURL,
	}
	for _, alg := range s.DPoPAlgorithms {
		c.algs[alg] = true
	}
	if c.mode != DPoPOff && c.replay == nil {
		c.replay, c.ownReplay = newMemoryReplayStore(DefaultReplayStoreSize, now), true
	}
	if len(s.DPoPNonceKeys) > 0 {
		n, err := newNonceSource(s.DPoPNonceKeys, s.DPoPNonceLifetime)
		if err != nil {
			return c, err
		}
		c.nonces = n
	}
	return c, nil
}

// DPoPMode returns the verifier's Settings.DPoP, with the default applied.
func (v *Verifier) DPoPMode() DPoPMode { return v.dp.mode }

// DPoPAlgorithms returns the JWS algorithms the verifier accepts in DPoP
// proofs, for the dpop_signing_alg_values_supported member of
// [ProtectedResourceMetadata]; nil when Settings.DPoP is DPoPOff.
func (v *Verifier) DPoPAlgorithms() []string {
	if v.dp.mode == DPoPOff {
		return nil
	}
	return slices.Clone(v.dp.algList)
}

// possession is what a request proved it holds besides the token.
type possession struct {
	proof *dpopProof    // a verified DPoP proof; nil without the DPoP scheme
	r     *http.Request // for the TLS client certificate; nil: none
	// scopes, if set, returns the scopes the request needs besides
	// Settings.RequiredScopes: [RequireBearerToken]'s. It is called once
	// the token is active, valid and bound, with its proof claimed when
	// it holds RequiredScopes.
	scopes func() []string
	// readsRequest says that scopes reads the request (an
	// OperationFunc), which may wait for its client.
	readsRequest bool
}

// mayWait reports whether checking a token with p may wait for I/O in a
// caller's code: reading the request's operation, or claiming a DPoP
// proof in a ReplayStore that is not one in memory.
func (v *Verifier) mayWait(p possession) bool {
	if p.readsRequest {
		return true
	}
	if p.proof == nil {
		return false
	}
	_, inMemory := v.dp.replay.(*memoryReplayStore)
	return !inMemory
}

// checkBinding decides whether p proves possession of what a binds its
// token to.
func (v *Verifier) checkBinding(ctx context.Context, a *answer, p possession) error {
	dpopBound := a.jkt != "" || strings.EqualFold(a.tokenType, "DPoP")
	switch {
	case dpopBound && p.proof == nil:
		return ErrProofRequired
	case dpopBound && (a.jkt == "" || subtle.ConstantTimeCompare([]byte(a.jkt), []byte(p.proof.thumbprint)) != 1):
		return ErrProofMismatch
	case !dpopBound && (p.proof != nil || v.dp.mode == DPoPRequired):
		return ErrTokenNotBound
	}
	if a.x5t == "" {
		return nil
	}
	thumb := v.certificateThumbprint(ctx, p.r)
	switch {
	case thumb == "":
		return ErrProofRequired
	case subtle.ConstantTimeCompare([]byte(a.x5t), []byte(thumb)) != 1:
		return ErrProofMismatch
	}
	return nil
}

// certificateThumbprint returns the RFC 8705 §3.1 thumbprint of r's client
// certificate, or "" when it has none.
func (v *Verifier) certificateThumbprint(ctx context.Context, r *http.Request) string {
	if r == nil {
		return ""
	}
	if v.s.ClientCertificate == nil {
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			return ""
		}
		return certificateThumbprint(r.TLS.PeerCertificates[0].Raw)
	}
	cert, err := v.s.ClientCertificate(r)
	if err != nil {
		v.logError(ctx, slog.LevelWarn, "introspection: Settings.ClientCertificate failed; the certificate-bound token is refused", "error", err)
		return ""
	}
	if cert == nil {
		return ""
	}
	return certificateThumbprint(cert.Raw)
}

// claimProof records p's jti in the replay store, so that the proof is
// accepted once.
func (v *Verifier) claimProof(ctx context.Context, p *dpopProof) error {
	sum := sha256.Sum256([]byte(p.thumbprint + "\x00" + p.jti))
	key := "dpop:" + base64.RawURLEncoding.EncodeToString(sum[:])
	// The proof stays acceptable until iat + window here, and, on a
	// replica whose clock is up to Leeway behind, for Leeway more.
	ttl := max(p.iat.Add(v.dp.window+v.s.Leeway).Sub(v.now()), time.Second)
	var first bool
	var err error
	if v.dp.ownReplay {
		first, err = v.dp.replay.Claim(ctx, key, ttl)
	} else {
		first, err = v.claimBounded(ctx, key, ttl)
	}
	switch {
	case err != nil:
		v.logError(ctx, slog.LevelWarn, "introspection: replay store failed; the DPoP proof is refused", "error", err)
		v.stats.failure(FailureReplayStore)
		v.stats.failed.Add(1)
		return &IntrospectionError{Kind: FailureReplayStore, Err: err}
	case !first:
		v.stats.rejected.Add(1)
		v.logRejection(ctx, ErrProofReplayed)
		return ErrProofReplayed
	}
	return nil
}

// claimBounded calls a caller's ReplayStore and waits for it at most
// replayCallTimeout, also if the store ignores its context. A panic in the
// store is recovered and fails the claim.
func (v *Verifier) claimBounded(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, replayCallTimeout)
	defer cancel()
	type result struct {
		first bool
		err   error
	}
	done := make(chan result, 1)
	go func() {
		r := result{err: errors.New("replay store ended its goroutine without an answer")}
		defer func() {
			if p := recover(); p != nil {
				r = result{err: v.recovered(ctx, "ReplayStore", p)}
			}
			done <- r
		}()
		first, err := v.dp.replay.Claim(ctx, key, ttl)
		r = result{first: first, err: err}
	}()
	select {
	case r := <-done:
		return r.first, r.err
	case <-ctx.Done():
		return false, fmt.Errorf("replay store did not answer: %w", ctx.Err())
	}
}

// checkProof verifies the DPoP proof of a request that presented token
// with the DPoP scheme, nonce included, but does not record its jti: that
// happens once the token is accepted.
//
// It counts and logs a refusal. A panic (in Settings.Now) is recovered,
// counted and logged, and fails the request as a FailurePanic.
func (v *Verifier) checkProof(r *http.Request, token string) (p *dpopProof, err error) {
	defer func() {
		if rec := recover(); rec != nil {
			p, err = nil, &IntrospectionError{Kind: FailurePanic, Err: v.recovered(r.Context(), "DPoP proof check", rec)}
			v.stats.failure(FailurePanic)
			v.stats.failed.Add(1)
			return
		}
		if err != nil {
			v.stats.rejected.Add(1)
			v.logRejection(r.Context(), err)
		}
	}()
	return v.proof(r, token)
}

// proof is checkProof without its accounting.
func (v *Verifier) proof(r *http.Request, token string) (*dpopProof, error) {
	proofs := r.Header.Values("DPoP")
	if len(proofs) != 1 {
		return nil, &DPoPProofError{Reason: "the request must have exactly one DPoP header"}
	}
	htu, err := v.requestURL(r)
	if err != nil {
		return nil, &DPoPProofError{Reason: "the request URL cannot be compared with htu"}
	}
	now := v.now()
	p, err := verifyProof(proofs[0], proofCheck{
		algs:   v.dp.algs,
		method: r.Method,
		htu:    htu,
		token:  token,
		now:    now,
		window: v.dp.window,
	})
	if err != nil {
		return nil, err
	}
	if v.dp.nonces != nil && !v.dp.nonces.valid(p.nonce, now, v.s.Leeway) {
		return nil, ErrUseDPoPNonce
	}
	return &p, nil
}

// currentNonce returns the nonce to send now, when nonces are on. ok is
// false when Settings.Now panicked: the panic is recovered, counted and
// logged.
func (v *Verifier) currentNonce(ctx context.Context) (nonce string, ok bool) {
	if v.dp.nonces == nil {
		return "", true
	}
	defer func() {
		if rec := recover(); rec != nil {
			_ = v.recovered(ctx, "DPoP nonce", rec)
			v.stats.failure(FailurePanic)
			v.stats.failed.Add(1)
			nonce, ok = "", false
		}
	}()
	return v.dp.nonces.current(v.now()), true
}

// requestPath returns the path of r as the client sent it, percent-encoding
// included, for comparing with a proof's htu: net/url's EscapedPath
// encodes the whole path afresh when it holds a character such as '|'
// that clients send as is, and so differs from what they signed.
func requestPath(r *http.Request) string {
	raw := r.RequestURI
	if !strings.HasPrefix(raw, "/") {
		// The absolute form, scheme://authority/path?query.
		if _, rest, ok := strings.Cut(raw, "://"); ok {
			if i := strings.IndexByte(rest, '/'); i >= 0 {
				raw = rest[i:]
			} else {
				raw = "/"
			}
		} else {
			raw = r.URL.EscapedPath()
		}
	}
	if i := strings.IndexAny(raw, "?#"); i >= 0 {
		raw = raw[:i]
	}
	if !strings.HasPrefix(raw, "/") {
		raw = "/" + raw
	}
	return raw
}

// requestURL returns the normalised URL a proof's htu must name for r.
func (v *Verifier) requestURL(r *http.Request) (string, error) {
	path := requestPath(r)
	if v.dp.publicBase != "" {
		return normalizeHTU(v.dp.publicBase + path)
	}
	scheme, host := "http", r.Host
	if r.TLS != nil {
		scheme = "https"
	}
	if v.s.TrustForwardedHeaders {
		if p := firstValue(r.Header.Get("X-Forwarded-Proto")); p != "" {
			scheme = strings.ToLower(p)
		}
		if h := firstValue(r.Header.Get("X-Forwarded-Host")); h != "" {
			host = h
		}
		if scheme != "http" && scheme != "https" {
			return "", errors.New("X-Forwarded-Proto is not http or https")
		}
	}
	if host == "" || strings.ContainsAny(host, "/?#@") {
		return "", errors.New("the request has no usable host")
	}
	return normalizeHTU(scheme + "://" + host + path)
}

// firstValue returns the first of a comma-separated header's values,
// trimmed.
func firstValue(h string) string {
	first, _, _ := strings.Cut(h, ",")
	return strings.TrimSpace(first)
}
