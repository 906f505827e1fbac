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

// newRequest builds the RFC 7662 §2.1 request for token.
func (v *Verifier) newRequest(ctx context.Context, token string) *http.Request {
	var b strings.Builder
	b.Grow(len(token) + 64)
	b.WriteString("token=")
	b.WriteString(url.QueryEscape(token))
	b.WriteString("&token_type_hint=access_token")
	if v.s.ClientAuthMethod == ClientSecretPost {
		b.WriteString("&client_id=")
		b.WriteString(url.QueryEscape(v.s.ClientID))
		b.WriteString("&client_secret=")
		b.WriteString(url.QueryEscape(v.s.ClientSecret))
	}
	body := b.String()
	u := *v.endpoint
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
		GetBody:       func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(body)), nil },
		ContentLength: int64(len(body)),
		Host:          u.Host,
	}
	if v.s.ClientAuthMethod == ClientSecretBasic {
		req.Header["Authorization"] = v.basicAuth
	}
	return req.WithContext(ctx)
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
func (v *Verifier) introspect(ctx context.Context, token string) (a *answer, err error) {
	defer func() {
		if ie, ok := err.(*IntrospectionError); ok && ie.Err != nil {
			ie.Err = scrubError(ie.Err, append(v.secrets(), token)...)
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, v.s.Timeout)
	defer cancel()
	resp, err := v.client.Do(v.newRequest(ctx, token))
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
		return nil, v.statusError(resp, body, token)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "" && !isJSON(ct) {
		shown := truncate(scrub(ct, append(v.secrets(), token)...), 64)
		return nil, &IntrospectionError{Kind: FailureContentType, StatusCode: resp.StatusCode,
			Err: fmt.Errorf("answer has Content-Type %q, want application/json", shown)}
	}
	a, err = decodeAnswer(body)
	if err != nil {
		return nil, &IntrospectionError{Kind: FailureMalformed, StatusCode: resp.StatusCode, Err: err}
	}
	return a, nil
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
// server's error and error_description are kept without the token, the client
// secret or the Basic credentials, which are scrubbed before truncation.
func (v *Verifier) statusError(resp *http.Response, body []byte, token string) error {
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
		secrets := append(v.secrets(), token)
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
