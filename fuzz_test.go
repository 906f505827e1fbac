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
// duplicate members whose active is the JSON boolean true and whose exp and
// nbf allow the token now.
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
	} {
		f.Add([]byte(seed))
	}
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	v := &Verifier{}
	f.Fuzz(func(t *testing.T, body []byte) {
		a, err := decodeAnswer(body)
		if err != nil {
			if a != nil {
				t.Fatal("an answer and an error")
			}
			return
		}
		if v.reject(a, now) != nil {
			return
		}
		// Accepted: check it independently.
		if !utf8.Valid(body) {
			t.Fatal("accepted invalid UTF-8")
		}
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("accepted a body that is not a JSON object: %v", err)
		}
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
		if key, dup := topLevelDuplicate(body); dup {
			t.Fatalf("accepted a duplicate member %q", key)
		}
	})
}

// topLevelDuplicate finds a duplicate member of the top-level object with
// encoding/json's tokenizer, independently of duplicateKey.
func topLevelDuplicate(body []byte) (string, bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if _, err := dec.Token(); err != nil {
		return "", false
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return "", false
		}
		key := tok.(string)
		if seen[key] {
			return key, true
		}
		seen[key] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return "", false
		}
	}
	return "", false
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
		token, ok, reason := bearerToken(r)
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
		if len(header) < 7 || !strings.EqualFold(header[:7], "bearer ") {
			t.Fatalf("accepted %q without the Bearer scheme", header)
		}
		if strings.TrimLeft(header[7:], " ") != token {
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
