package introspection

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
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

// maxTokenSize caps the length of a bearer token accepted for introspection.
const maxTokenSize = 4096

// maxNumericDate is 9999-12-31T23:59:59Z; later NumericDates are malformed.
const maxNumericDate = 253402300799

// b64tokenChars marks the characters of an RFC 6750 §2.1 b64token before
// its trailing "=" padding.
var b64tokenChars = func() (t [256]bool) {
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/") {
		t[c] = true
	}
	return t
}()

// validToken reports whether token is a non-empty RFC 6750 §2.1 b64token of
// at most maxTokenSize bytes:
//
//	b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
func validToken(token string) bool {
	if len(token) == 0 || len(token) > maxTokenSize {
		return false
	}
	i := 0
	for i < len(token) && b64tokenChars[token[i]] {
		i++
	}
	if i == 0 {
		return false
	}
	for ; i < len(token); i++ {
		if token[i] != '=' {
			return false
		}
	}
	return true
}

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

func putBuffer(b *bytes.Buffer) {
	if b.Cap() <= 64<<10 {
		bufPool.Put(b)
	}
}

// introspect sends one introspection request and decodes the answer.
func (v *Verifier) introspect(ctx context.Context, token string) (*answer, error) {
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
		return nil, statusError(resp, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "" && !isJSON(ct) {
		return nil, &IntrospectionError{Kind: FailureContentType, StatusCode: resp.StatusCode,
			Err: fmt.Errorf("answer has Content-Type %q, want application/json", truncate(ct, 64))}
	}
	a, err := decodeAnswer(body)
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

// statusError builds the error for an answer that is not 200 OK.
func statusError(resp *http.Response, body []byte) error {
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
		if s, ok := oauthErr.Error.(string); ok {
			e.ErrorCode = truncate(s, 128)
		}
		if s, ok := oauthErr.Description.(string); ok {
			e.ErrorDescription = truncate(s, 256)
		}
	}
	return e
}

// parseRetryAfter reads an RFC 9110 §10.2.3 Retry-After value.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
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

// answer is a decoded RFC 7662 §2.2 introspection response. It holds no
// token and is never changed after decoding, so it can be shared.
type answer struct {
	active    bool
	clientID  string
	subject   string
	username  string
	issuer    string
	tokenType string
	tokenUse  string
	scopes    []string
	audience  []string
	expiresAt time.Time
	issuedAt  time.Time
	notBefore time.Time
	// The whole answer is in claims as decoded, or, once compacted for the
	// built-in cache, in pairs, which takes about half the memory.
	claims map[string]any
	pairs  []claim
}

// claim is one member of a compacted answer.
type claim struct {
	name  string
	value any
}

// compact returns a copy of a that keeps its members as pairs, with the
// names of RFC 7662 members and the values that many tokens share (issuer,
// audience, scopes, token type, client) taken from in rather than held
// once per answer.
func (a *answer) compact(in *interner) *answer {
	c := *a
	c.claims = nil
	c.pairs = make([]claim, 0, len(a.claims))
	for k, v := range a.claims {
		name := internName(k)
		switch name {
		case "iss", "token_type", "client_id", "token_use", "scope", "aud":
			v = in.value(name, v)
		}
		c.pairs = append(c.pairs, claim{name: name, value: v})
		switch s, _ := v.(string); name {
		case "iss":
			c.issuer = s
		case "token_type":
			c.tokenType = s
		case "client_id":
			c.clientID = s
		case "token_use":
			c.tokenUse = s
		}
	}
	if c.scopes != nil {
		c.scopes = in.strings("scopes", c.scopes)
	}
	if c.audience != nil {
		c.audience = in.strings("audience", c.audience)
	}
	return &c
}

// claimsCopy returns a deep copy of the answer's members as a map.
func (a *answer) claimsCopy() map[string]any {
	if a.pairs == nil {
		return copyClaims(a.claims)
	}
	m := make(map[string]any, len(a.pairs))
	for _, c := range a.pairs {
		m[c.name] = copyJSON(c.value)
	}
	return m
}

func internName(k string) string {
	switch k {
	case "active":
		return "active"
	case "scope":
		return "scope"
	case "client_id":
		return "client_id"
	case "username":
		return "username"
	case "token_type":
		return "token_type"
	case "exp":
		return "exp"
	case "iat":
		return "iat"
	case "nbf":
		return "nbf"
	case "sub":
		return "sub"
	case "aud":
		return "aud"
	case "iss":
		return "iss"
	case "jti":
		return "jti"
	case "token_use":
		return "token_use"
	case "scp":
		return "scp"
	}
	return k
}

// decodeAnswer parses and type-checks an introspection response: strict
// where RFC 7662 is strict (active is a JSON boolean, members have their
// types), tolerant where servers differ (scope as string or array, scp as a
// fallback, aud as string or array, fractional NumericDates, null members
// treated as absent).
func decodeAnswer(body []byte) (*answer, error) {
	if !utf8.Valid(body) {
		return nil, errors.New("answer is not valid UTF-8")
	}
	var claims map[string]any
	if err := json.Unmarshal(body, &claims); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			if typeErr.Field != "" {
				return nil, fmt.Errorf("answer member %q is out of range", truncate(typeErr.Field, 64))
			}
			return nil, errors.New("answer is not a JSON object")
		}
		return nil, fmt.Errorf("answer is not valid JSON: %w", err)
	}
	if claims == nil {
		return nil, errors.New("answer is not a JSON object")
	}
	if key, dup := duplicateKey(body); dup {
		return nil, fmt.Errorf("answer has member %q more than once", truncate(key, 64))
	}
	a := &answer{claims: claims}
	active, ok := claims["active"].(bool)
	if !ok {
		if claims["active"] == nil {
			return nil, errors.New(`answer has no "active" member`)
		}
		return nil, errors.New(`answer member "active" is not a JSON boolean`)
	}
	a.active = active

	var err error
	for _, f := range []struct {
		name string
		dst  *string
	}{
		{"client_id", &a.clientID},
		{"sub", &a.subject},
		{"username", &a.username},
		{"iss", &a.issuer},
		{"token_type", &a.tokenType},
		{"token_use", &a.tokenUse},
	} {
		if *f.dst, err = stringMember(claims, f.name); err != nil {
			return nil, err
		}
	}
	for _, f := range []struct {
		name string
		dst  *time.Time
	}{
		{"exp", &a.expiresAt},
		{"iat", &a.issuedAt},
		{"nbf", &a.notBefore},
	} {
		if *f.dst, err = numericDate(claims, f.name); err != nil {
			return nil, err
		}
	}
	if a.scopes, err = scopeMember(claims, "scope"); err != nil {
		return nil, err
	}
	if claims["scope"] == nil {
		if a.scopes, err = scopeMember(claims, "scp"); err != nil {
			return nil, err
		}
	}
	if a.audience, err = stringsMember(claims, "aud"); err != nil {
		return nil, err
	}
	return a, nil
}

func stringMember(claims map[string]any, name string) (string, error) {
	switch v := claims[name].(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	default:
		return "", fmt.Errorf("answer member %q is not a string", name)
	}
}

// numericDate reads an RFC 7519 NumericDate: non-negative seconds, integral
// or fractional, no later than year 9999.
func numericDate(claims map[string]any, name string) (time.Time, error) {
	switch v := claims[name].(type) {
	case nil:
		return time.Time{}, nil
	case float64:
		if v < 0 || v > maxNumericDate || math.IsNaN(v) {
			return time.Time{}, fmt.Errorf("answer member %q is not a valid NumericDate", name)
		}
		sec, frac := math.Modf(v)
		return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
	default:
		return time.Time{}, fmt.Errorf("answer member %q is not a number", name)
	}
}

// scopeMember reads scopes given as one space-separated string (RFC 7662)
// or as an array of strings (as some servers send scp).
func scopeMember(claims map[string]any, name string) ([]string, error) {
	return listMember(claims, name, true)
}

// stringsMember reads a member that is a string or an array of strings.
func stringsMember(claims map[string]any, name string) ([]string, error) {
	return listMember(claims, name, false)
}

// listMember reads a string or an array of strings; with fields, each
// string is split at white space.
func listMember(claims map[string]any, name string, fields bool) ([]string, error) {
	switch v := claims[name].(type) {
	case nil:
		return nil, nil
	case string:
		if fields {
			return strings.Fields(v), nil
		}
		return []string{v}, nil
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("answer member %q is not a string or an array of strings", name)
			}
			if fields {
				out = append(out, strings.Fields(s)...)
			} else {
				out = append(out, s)
			}
		}
		return out, nil
	default:
		return nil, fmt.Errorf("answer member %q is not a string or an array of strings", name)
	}
}

// duplicateKey reports whether the top-level JSON object in data, which
// must already be known to be valid JSON, names a member twice. Go's decoder
// keeps the last of duplicate members; another parser may keep the first, so
// an answer like {"active":false,"active":true} is ambiguous and refused.
func duplicateKey(data []byte) (string, bool) {
	var keysBuf [32][]byte
	keys := keysBuf[:0]
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return "", false
	}
	i++
	for {
		i = skipSpace(data, i)
		if i >= len(data) || data[i] == '}' {
			return "", false
		}
		if data[i] == ',' {
			i = skipSpace(data, i+1)
		}
		start := i
		i = skipString(data, i)
		key := data[start+1 : i-1]
		if bytes.IndexByte(key, '\\') >= 0 {
			var k string
			_ = json.Unmarshal(data[start:i], &k)
			key = []byte(k)
		}
		for _, seen := range keys {
			if bytes.Equal(seen, key) {
				return string(key), true
			}
		}
		keys = append(keys, key)
		i = skipSpace(data, i)
		i++ // ':'
		i = skipValue(data, skipSpace(data, i))
	}
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index just past the JSON string starting at i.
func skipString(data []byte, i int) int {
	for i++; i < len(data); i++ {
		switch data[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return i
}

// skipValue returns the index just past the JSON value starting at i.
func skipValue(data []byte, i int) int {
	depth := 0
	for i < len(data) {
		switch data[i] {
		case '"':
			i = skipString(data, i)
			if depth == 0 {
				return i
			}
			continue
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return i + 1
			}
			if depth < 0 {
				return i
			}
		case ',':
			if depth == 0 {
				return i
			}
		}
		i++
	}
	return i
}
