package introspection

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// maxNumericDate is 9999-12-31T23:59:59Z; later NumericDates are malformed.
const maxNumericDate = 253402300799

// answer is a decoded RFC 7662 §2.2 introspection response. It holds no
// token and is never changed after decoding, so it can be shared.
type answer struct {
	active bool
	// The size of the JSON it was decoded from, for the bounds of the
	// built-in cache: its bytes, and its values (more than math.MaxUint16
	// count as that many). Both fit beside active in one word.
	values    uint16
	size      uint32
	clientID  string
	subject   string
	username  string
	issuer    string
	tokenType string
	tokenUse  string
	// The cnf members (RFC 7800 §3.1) that bind the token to a key:
	// jkt, the RFC 7638 thumbprint of a DPoP key (RFC 9449 §6.1), and
	// x5t#S256, the thumbprint of a client certificate (RFC 8705 §3.1).
	jkt       string
	x5t       string
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
	in.mu.Lock()
	defer in.mu.Unlock()
	for k, v := range a.claims {
		name := internName(k)
		switch name {
		case "iss", "token_type", "client_id", "token_use", "scope", "aud":
			v = in.value(v)
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
		c.scopes = in.strings(c.scopes)
	}
	if c.audience != nil {
		c.audience = in.strings(c.audience)
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
	case "cnf":
		return "cnf"
	}
	return k
}

// decodeAnswer parses and type-checks an introspection response: strict
// where RFC 7662 is strict (active is a JSON boolean, members of an active
// answer have their types; an inactive answer is taken as it is), tolerant
// where servers differ (scope as string or array, scp as a
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
			// Into a map[string]any, a type error is either a number that
			// no float64 holds or a top level that is not an object.
			if typeErr.Type != nil && typeErr.Type.Kind() == reflect.Float64 {
				return nil, errors.New("answer has a number out of range")
			}
			return nil, errors.New("answer is not a JSON object")
		}
		return nil, fmt.Errorf("answer is not valid JSON: %w", err)
	}
	if claims == nil {
		return nil, errors.New("answer is not a JSON object")
	}
	st := scanJSON(body)
	if st.dup {
		return nil, fmt.Errorf("answer has member %s more than once", memberName(st.duplicate))
	}
	a := &answer{
		claims: claims,
		size:   uint32(min(uint64(len(body)), math.MaxUint32)),
		values: uint16(min(st.values, math.MaxUint16)),
	}
	active, ok := claims["active"].(bool)
	if !ok {
		if claims["active"] == nil {
			return nil, errors.New(`answer has no "active" member`)
		}
		return nil, errors.New(`answer member "active" is not a JSON boolean`)
	}
	a.active = active
	if !active {
		// The server answered, and its answer refuses the token: what the
		// other members hold, of whatever type, changes nothing. Read as
		// malformed, such an answer would count against the breaker and
		// let a stale, older active answer be served in its place.
		return a, nil
	}

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
	if a.jkt, a.x5t, err = confirmation(claims); err != nil {
		return nil, err
	}
	return a, nil
}

// confirmation reads the jkt and x5t#S256 members of cnf. cnf, when
// present and not null, must be an object, and each of the two, when
// present, a non-empty string: a binding the verifier cannot read is never
// taken for no binding. Other members of cnf are ignored.
func confirmation(claims map[string]any) (jkt, x5t string, err error) {
	var cnf map[string]any
	switch v := claims["cnf"].(type) {
	case nil:
		return "", "", nil
	case map[string]any:
		cnf = v
	default:
		return "", "", errors.New(`answer member "cnf" is not a JSON object`)
	}
	for _, m := range []struct {
		name string
		dst  *string
	}{
		{"jkt", &jkt},
		{"x5t#S256", &x5t},
	} {
		v, present := cnf[m.name]
		if !present {
			continue
		}
		if s, ok := v.(string); ok && s != "" {
			*m.dst = s
			continue
		}
		return "", "", fmt.Errorf("answer member \"cnf\" has a %q that is not a non-empty string", m.name)
	}
	return jkt, x5t, nil
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

// memberName names a member in an error: by its name when RFC 7662 or
// RFC 7519 defines it, else as "(another)": the server chose that name, and
// it may repeat the token, which an error never shows.
func memberName(k string) string {
	switch k {
	case "active", "scope", "client_id", "username", "token_type", "exp", "iat", "nbf",
		"sub", "aud", "iss", "jti", "token_use", "scp", "cnf":
		return strconv.Quote(k)
	}
	return "(another)"
}
