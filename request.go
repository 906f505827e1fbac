package introspection

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// maxBodySize caps the introspection answer that is read (as x/oauth2 does).
const maxBodySize = 1 << 20

// target is where and how introspection requests are sent: fixed by the
// settings, or given by the issuer's metadata. Never modified once made.
type target struct {
	endpoint *url.URL
	method   ClientAuthMethod
	signer   *jwtSigner // for ClientSecretJWT and PrivateKeyJWT; else nil
	audience string     // the aud of client assertions
}

// clientAuth is what the settings give to authenticate the client.
type clientAuth struct {
	creds  clientCredentials
	key    *jwtSigner // from Settings.PrivateKey, or nil
	secret *jwtSigner // HS256 with Settings.ClientSecret when long enough, or nil
}

// newClientAuth returns the client authentication of the validated
// settings s.
func newClientAuth(s Settings) (clientAuth, error) {
	var a clientAuth
	var err error
	if s.PrivateKey != nil {
		if a.key, err = newKeySigner(s.PrivateKey); err != nil {
			return a, err
		}
	}
	if len(s.ClientSecret) >= MinClientSecretJWTSize {
		if a.secret, err = newSecretSigner(s.ClientSecret); err != nil {
			return a, err
		}
	}
	a.creds = clientCredentials{
		secret:    s.ClientSecret != "",
		secretJWT: a.secret != nil,
		key:       a.key != nil,
		certificate: s.TLSClientCertificate != nil ||
			s.HTTPClient != nil && isTLSMethod(s.ClientAuthMethod),
		selfSigned: isSelfSigned(s.TLSClientCertificate),
	}
	if a.key != nil {
		a.creds.keyAlg = a.key.alg()
	}
	return a, nil
}

// isTLSMethod reports whether m authenticates the client with its TLS
// certificate (RFC 8705 §2).
func isTLSMethod(m ClientAuthMethod) bool {
	return m == TLSClientAuth || m == SelfSignedTLSClientAuth
}

// newTarget returns the target that sends requests to endpoint with
// method; client assertions name audience.
func (v *Verifier) newTarget(endpoint *url.URL, method ClientAuthMethod, audience string) (*target, error) {
	t := &target{endpoint: endpoint, method: method, audience: audience}
	switch method {
	case ClientSecretBasic, ClientSecretPost:
		if v.basicAuth == nil {
			return nil, fmt.Errorf("%s needs ClientSecret", method)
		}
	case ClientSecretJWT:
		if t.signer = v.auth.secret; t.signer == nil {
			return nil, fmt.Errorf("%s needs a ClientSecret of at least %d bytes", method, MinClientSecretJWTSize)
		}
	case PrivateKeyJWT:
		if t.signer = v.auth.key; t.signer == nil {
			return nil, fmt.Errorf("%s needs PrivateKey", method)
		}
	case TLSClientAuth, SelfSignedTLSClientAuth:
	default:
		return nil, fmt.Errorf("unsupported client authentication method %q", method)
	}
	return t, nil
}

// The form fields of a client assertion (RFC 7521 §4.2, RFC 7523 §2.2),
// form-encoded.
const (
	assertionTypeField = "&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
	assertionField     = "&client_assertion="
)

// assertions are the client assertions one request carried: one, and one
// more each time net/http sends the request again. They are never shown.
type assertions struct {
	mu   sync.Mutex // guards list
	list []string
}

func (a *assertions) add(s string) {
	a.mu.Lock()
	a.list = append(a.list, s)
	a.mu.Unlock()
}

// secrets returns the assertions, and the signature of each, to be
// scrubbed from text.
func (a *assertions) secrets() []string {
	if a == nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]string, 0, 2*len(a.list))
	for _, s := range a.list {
		out = append(out, s)
		if i := strings.LastIndexByte(s, '.'); i >= 0 && i+1 < len(s) {
			out = append(out, s[i+1:])
		}
	}
	return out
}

// newRequest builds the RFC 7662 §2.1 request for token to t, with the
// client authentication of t's method. For the assertion methods it signs
// a new assertion, and signs another each time net/http asks for the body
// again (GetBody, to send the request on a new connection), so that no
// assertion is ever sent twice; sent lists them. Only signing can fail.
func (v *Verifier) newRequest(ctx context.Context, token string, t *target) (*http.Request, *assertions, error) {
	var b strings.Builder
	b.Grow(len(token) + 64)
	b.WriteString("token=")
	b.WriteString(url.QueryEscape(token))
	b.WriteString("&token_type_hint=access_token")
	switch t.method {
	case ClientSecretPost:
		b.WriteString("&client_id=")
		b.WriteString(url.QueryEscape(v.s.ClientID))
		b.WriteString("&client_secret=")
		b.WriteString(url.QueryEscape(v.s.ClientSecret))
	case TLSClientAuth, SelfSignedTLSClientAuth:
		b.WriteString("&client_id=")
		b.WriteString(url.QueryEscape(v.s.ClientID))
	}
	if t.signer != nil {
		return v.newAssertionRequest(ctx, b.String(), t)
	}
	body := b.String()
	return v.postRequest(ctx, body, t, func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(body)), nil }), nil, nil
}

// newAssertionRequest returns the request with form, followed by a new
// client assertion of t and client_id, and a GetBody that signs another.
func (v *Verifier) newAssertionRequest(ctx context.Context, form string, t *target) (*http.Request, *assertions, error) {
	// A body sent again keeps the first assertion's iat and exp, so that
	// it has the first one's length.
	now := v.now()
	sent := &assertions{}
	body, err := v.assertionBody(form, t, now, sent)
	if err != nil {
		return nil, nil, err
	}
	n := len(body)
	getBody := func() (io.ReadCloser, error) {
		again, err := v.assertionBody(form, t, now, sent)
		if err != nil {
			return nil, err
		}
		if len(again) != n {
			// Never the case with the algorithms' fixed-size signatures;
			// a body of another length would not be sent.
			return nil, errors.New("the client assertion signed again has another length")
		}
		return io.NopCloser(strings.NewReader(again)), nil
	}
	return v.postRequest(ctx, body, t, getBody), sent, nil
}

// postRequest returns the POST of body, a form, to t's endpoint, with
// getBody to read it again.
func (v *Verifier) postRequest(ctx context.Context, body string, t *target, getBody func() (io.ReadCloser, error)) *http.Request {
	u := *t.endpoint
	req := &http.Request{
		Method:     http.MethodPost,
		URL:        &u,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header: http.Header{
			"Content-Type": formContentType,
			"Accept":       acceptJSON,
		},
		Body:          io.NopCloser(strings.NewReader(body)),
		GetBody:       getBody,
		ContentLength: int64(len(body)),
		Host:          u.Host,
	}
	if t.method == ClientSecretBasic {
		req.Header["Authorization"] = v.basicAuth
	}
	return req.WithContext(ctx)
}

// assertionBody returns form followed by a new client assertion of t,
// issued at now, and client_id; the assertion is added to sent.
func (v *Verifier) assertionBody(form string, t *target, now time.Time, sent *assertions) (string, error) {
	a, err := t.signer.clientAssertion(v.s.ClientID, t.audience, now)
	if err != nil {
		return "", fmt.Errorf("signing the client assertion: %w", err)
	}
	sent.add(a)
	id := url.QueryEscape(v.s.ClientID)
	var b strings.Builder
	b.Grow(len(form) + len(assertionTypeField) + len(assertionField) + len(a) + len("&client_id=") + len(id))
	b.WriteString(form)
	b.WriteString(assertionTypeField)
	b.WriteString(assertionField)
	b.WriteString(a) // base64url and dots: nothing to escape
	b.WriteString("&client_id=")
	b.WriteString(id)
	return b.String(), nil
}

// Header values shared by every request. net/http only reads them, and
// Header.Set and Header.Add replace a value slice rather than write into it.
var (
	formContentType = []string{"application/x-www-form-urlencoded"}
	acceptJSON      = []string{"application/json"}
)

// basicAuthHeader encodes client credentials per RFC 6749 §2.3.1: each part
// is form-encoded before "id:secret" is base64-encoded.
func basicAuthHeader(id, secret string) string {
	r := http.Request{Header: http.Header{}}
	r.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	return r.Header.Get("Authorization")
}

// bufPool holds buffers for reading answers; decoding copies what it keeps.
var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledBuffer is the largest read buffer kept for reuse; larger ones,
// from rare large answers, are left to the garbage collector.
const maxPooledBuffer = 64 << 10

func putBuffer(b *bytes.Buffer) {
	if b.Cap() <= maxPooledBuffer {
		bufPool.Put(b)
	}
}

// introspect sends one introspection request and decodes the answer.
//
// The text of every error it returns is scrubbed of the token and the
// client's secrets: the server chooses much of it (a Content-Type, a broken
// status line or header that net/http quotes, a member name).
func (v *Verifier) introspect(ctx context.Context, token string, t *target) (a *answer, err error) {
	var sent *assertions
	defer func() {
		if ie, ok := err.(*IntrospectionError); ok && ie.Err != nil {
			ie.Err = scrubError(ie.Err, v.hidden(token, sent)...)
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, v.s.Timeout)
	defer cancel()
	req, sent, err := v.newRequest(ctx, token, t)
	if err != nil {
		return nil, &IntrospectionError{Kind: FailureTransport, Err: err}
	}
	resp, err := v.client.Do(req)
	if err != nil {
		return nil, v.transportError(ctx, err)
	}
	defer resp.Body.Close()

	buf := bufPool.Get().(*bytes.Buffer)
	defer putBuffer(buf)
	buf.Reset()
	if _, err := buf.ReadFrom(io.LimitReader(resp.Body, maxBodySize+1)); err != nil {
		return nil, v.transportError(ctx, err)
	}
	body := buf.Bytes()
	if len(body) > maxBodySize {
		return nil, &IntrospectionError{Kind: FailureTooLarge, StatusCode: resp.StatusCode,
			Err: fmt.Errorf("answer is larger than %d bytes", maxBodySize)}
	}
	if resp.StatusCode != http.StatusOK {
		return nil, v.statusError(resp, body, token, sent)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "" && !isJSON(ct) {
		shown := truncate(scrub(ct, v.hidden(token, sent)...), 64)
		return nil, &IntrospectionError{Kind: FailureContentType, StatusCode: resp.StatusCode,
			Err: fmt.Errorf("answer has Content-Type %q, want application/json", shown)}
	}
	a, err = decodeAnswer(body)
	if err != nil {
		return nil, &IntrospectionError{Kind: FailureMalformed, StatusCode: resp.StatusCode, Err: err}
	}
	return a, nil
}

// hidden returns what must never show in text about the request for
// token that carried the client assertions sent: the verifier's secrets,
// the assertions and the token.
func (v *Verifier) hidden(token string, sent *assertions) []string {
	return append(append(v.secrets(), sent.secrets()...), token)
}

// transportError classifies an error from sending or reading a request.
func (v *Verifier) transportError(ctx context.Context, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		// The cause is our own deadline; do not wrap context.DeadlineExceeded,
		// which callers read as their own context ending.
		return &IntrospectionError{Kind: FailureTimeout,
			Err: fmt.Errorf("no answer within %v", v.s.Timeout)}
	}
	return &IntrospectionError{Kind: FailureTransport, Err: err}
}

// statusError builds the error for an answer that is not 200 OK. The
// server's error and error_description are kept without the token, the
// client secret, the Basic credentials or the client assertions sent,
// which are scrubbed before truncation.
func (v *Verifier) statusError(resp *http.Response, body []byte, token string, sent *assertions) error {
	e := &IntrospectionError{Kind: FailureStatus, StatusCode: resp.StatusCode}
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		e.Kind = FailureRedirect
		e.Err = errors.New("redirects are not followed")
	}
	if ra := resp.Header.Get("Retry-After"); ra != "" {
		e.RetryAfter = parseRetryAfter(ra, time.Now())
	}
	var oauthErr struct {
		Error       any `json:"error"`
		Description any `json:"error_description"`
	}
	if json.Unmarshal(body, &oauthErr) == nil {
		secrets := v.hidden(token, sent)
		if s, ok := oauthErr.Error.(string); ok {
			e.ErrorCode = truncate(scrub(s, secrets...), 128)
		}
		if s, ok := oauthErr.Description.(string); ok {
			e.ErrorDescription = truncate(scrub(s, secrets...), 256)
		}
	}
	return e
}

// parseRetryAfter reads an RFC 9110 §10.2.3 Retry-After value, delay-seconds
// (digits only) or an HTTP-date, as a delay from now. The delay is never
// negative and at most maxRetryAfter, however large the number or far the
// date; anything else, and a date in the past, is 0.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v != "" && strings.Trim(v, "0123456789") == "" {
		// Digits only, so the one possible error is a value too large for
		// any integer: still a delay, and longer than the cap.
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n > uint64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), maxRetryAfter)
	}
	return 0
}

func isJSON(contentType string) bool {
	if strings.EqualFold(contentType, "application/json") {
		return true
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	return mt == "application/json" || strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")
}

// truncate shortens s to at most n bytes of valid UTF-8 without control
// characters, so that server text is safe to show in errors and logs.
func truncate(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "?"))
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
