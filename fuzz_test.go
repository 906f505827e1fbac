package introspection

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzDecodeAnswer checks that decoding never panics and that no answer is
// accepted unless it is, by an independent reading, a JSON object without
// duplicate members in any object at any depth, whose active is the JSON
// boolean true and whose exp and nbf allow the token now. It also checks
// that a JSON object is refused for a duplicate member exactly when the
// independent reading finds one, and that the scan counts its values as
// the independent reading does.
func FuzzDecodeAnswer(f *testing.F) {
	for _, seed := range []string{
		`{"active":true}`,
		`{"active":false}`,
		`{"active":"true"}`,
		`{"active":true,"exp":4102444800,"nbf":0,"scope":"a b","aud":["x"]}`,
		`{"active":true,"scp":["a"],"aud":"x","exp":4102444800.5}`,
		`{"active":false,"active":true}`,
		`{"active":true,"exp":1}`,
		`{"active":true,"token_use":"refresh_token"}`,
		`{"active":true,"sub":"\u00e9","client_id":null}`,
		`[true]`,
		`{"active":true,"x":[{"a":1},{"a":1,"\u0061":2}]}`,
		`{"active":true,"x":{"\ud83d\ude00":1,"😀":2}}`,
		`{"active":true,"x":{"\ud800":1,"\udc00":2}}`,
		`{"active":true,"x":{"a\"":{"a\"":1},"b\\":[]}}`,
	} {
		f.Add([]byte(seed))
	}
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	v := &Verifier{}
	f.Fuzz(func(t *testing.T, body []byte) {
		a, err := decodeAnswer(body)
		var m map[string]any
		object := utf8.Valid(body) && json.Unmarshal(body, &m) == nil && m != nil
		if object {
			key, dup, values := independentScan(body)
			dupErr := "answer has member " + memberName(key) + " more than once"
			if dup && (err == nil || err.Error() != dupErr || scanJSON(body).duplicate != key) {
				t.Fatalf("duplicate member %q: got error %v", key, err)
			}
			if !dup && err != nil && strings.Contains(err.Error(), "more than once") {
				t.Fatalf("refused for a duplicate member that is not there: %v", err)
			}
			if st := scanJSON(body); !dup && st.values != values {
				t.Fatalf("scan counted %d values, want %d", st.values, values)
			}
		}
		if err != nil {
			if a != nil {
				t.Fatal("an answer and an error")
			}
			return
		}
		if !object {
			t.Fatal("accepted a body that is not a JSON object in valid UTF-8")
		}
		if v.reject(a, now) != nil {
			return
		}
		// Accepted: check it independently.
		if m["active"] != true {
			t.Fatalf("accepted active=%#v", m["active"])
		}
		if exp, ok := m["exp"]; ok && exp != nil {
			if f, ok := exp.(float64); !ok || f <= float64(now.Unix()) {
				t.Fatalf("accepted exp=%#v", exp)
			}
		}
		if nbf, ok := m["nbf"]; ok && nbf != nil {
			if f, ok := nbf.(float64); !ok || f > float64(now.Unix()) {
				t.Fatalf("accepted nbf=%#v", nbf)
			}
		}
		if use, ok := m["token_use"].(string); ok && use != "access_token" {
			t.Fatalf("accepted token_use=%q", use)
		}
	})
}

// independentScan reads a JSON text with encoding/json's tokenizer,
// independently of scanJSON: it returns the first member name that one
// object, at any depth, has twice (in the order the second one comes), and
// the number of JSON values.
func independentScan(body []byte) (key string, dup bool, values int) {
	dec := json.NewDecoder(bytes.NewReader(body))
	type open struct {
		names map[string]bool // nil for an array
		name  bool            // the next token is a name
	}
	var stack []open
	for {
		tok, err := dec.Token()
		if err != nil {
			return "", false, values
		}
		top := len(stack) - 1
		if top >= 0 && stack[top].names != nil && stack[top].name {
			if d, ok := tok.(json.Delim); !ok || d != '}' {
				name := tok.(string)
				if stack[top].names[name] {
					return name, true, values
				}
				stack[top].names[name] = true
				stack[top].name = false
				continue
			}
		}
		if top >= 0 && stack[top].names != nil {
			stack[top].name = true // after a value, a name or the end
		}
		switch tok {
		case json.Delim('{'):
			values++
			stack = append(stack, open{names: map[string]bool{}, name: true})
		case json.Delim('['):
			values++
			stack = append(stack, open{})
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:top]
			if top > 0 && stack[top-1].names != nil {
				stack[top-1].name = true
			}
		default:
			values++
		}
	}
}

// FuzzBearerToken checks that credential parsing never panics, yields a
// token only from one "Bearer <b64token>" header, never while the query or a
// form-encoded body holds access_token by an independent reading (with ";"
// taken as a separator too), and always leaves the body for the next handler
// exactly as it was.
func FuzzBearerToken(f *testing.F) {
	for _, seed := range []string{
		"Bearer abc", "bearer abc==", "BEARER  a.b-c_d~e+f/g=", "Bearer", "Bearer ", "Bearer a b",
		"Basic dXNlcjpwYXNz", "Bearer\tabc", "Bearer ab=c", "Bearerabc", "",
	} {
		f.Add(seed, "", "", "")
	}
	const form = "application/x-www-form-urlencoded"
	f.Add("Bearer abc", "access_token=abc", "", "")
	f.Add("Bearer abc", "access%5Ftoken=abc", "", "")
	f.Add("Bearer abc", "a=1;access_token=abc", "", "")
	f.Add("Bearer abc", "q=access_token", "", "")
	f.Add("Bearer abc", "", form, "access_token=abc")
	f.Add("Bearer abc", "", form+"; charset=utf-8", "a=1;access%5ftoken=abc")
	f.Add("Bearer abc", "", "application/json", `{"access_token":"abc"}`)
	f.Fuzz(func(t *testing.T, header, query, contentType, body string) {
		r, err := http.NewRequest(http.MethodPost, "http://127.0.0.1/?"+query, strings.NewReader(body))
		if err != nil {
			return
		}
		r.Header["Authorization"] = []string{header}
		r.Header["Content-Type"] = []string{contentType}
		scheme, token, reason := credentials(r, DPoPAllowed)
		ok := scheme != ""
		if rest, err := io.ReadAll(r.Body); err != nil || string(rest) != body {
			t.Fatalf("the body left for the next handler is %q, want %q (%v)", rest, body, err)
		}
		if ok && reason != "" {
			t.Fatal("both ok and malformed")
		}
		if !ok {
			if token != "" {
				t.Fatal("a token without ok")
			}
			return
		}
		if !validToken(token) {
			t.Fatalf("accepted invalid token %q", token)
		}
		n := len(scheme) + 1
		if len(header) < n || !strings.EqualFold(header[:n], scheme+" ") {
			t.Fatalf("accepted %q without the %s scheme", header, scheme)
		}
		if strings.TrimLeft(header[n:], " ") != token {
			t.Fatalf("token %q is not the rest of %q", token, header)
		}
		if hasAccessToken(r.URL.RawQuery) {
			t.Fatal("accepted a token alongside access_token in the query")
		}
		if mt, _, err := mime.ParseMediaType(contentType); err == nil && mt == form {
			if hasAccessToken(body) {
				t.Fatal("accepted a token alongside access_token in a form body")
			}
			if len(body) > maxFormScan {
				t.Fatal("accepted a form body too large to check")
			}
		}
	})
}

// hasAccessToken reports whether url.ParseQuery finds access_token in q once
// ";" separates parameters as "&" does.
func hasAccessToken(q string) bool {
	values, _ := url.ParseQuery(strings.ReplaceAll(q, ";", "&"))
	_, found := values["access_token"]
	return found
}
