package introspection

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rawServer answers every request with the raw bytes of resp, written on the
// hijacked connection, so that the answer may break HTTP itself.
func rawServer(t *testing.T, resp string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		_, _ = buf.WriteString(resp)
		_ = buf.Flush()
		_ = conn.Close()
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestServerTextAnywhereNeverCarriesTheToken has the authorization server
// put the token, or the client secret, where no error member is: in the
// Content-Type, in a broken status line or header, in a member name. The
// error, every way of printing it (also wrapped) and the logs never show it.
func TestServerTextAnywhereNeverCarriesTheToken(t *testing.T) {
	const token = "Rv7.tok~EN-abc_0123"
	tests := []struct {
		name  string
		token string
		srv   func(t *testing.T, token string) *httptest.Server
	}{
		{"Content-Type", token, func(t *testing.T, tok string) *httptest.Server {
			return rawServer(t, "HTTP/1.1 200 OK\r\nContent-Type: text/html; x="+tok+"\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
		}},
		{"Content-Type with the secret", leakSecret, func(t *testing.T, _ string) *httptest.Server {
			return rawServer(t, "HTTP/1.1 200 OK\r\nContent-Type: text/"+leakSecret+"\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
		}},
		{"status line", token, func(t *testing.T, tok string) *httptest.Server {
			return rawServer(t, "HTTP/1.1 "+tok+"\r\nConnection: close\r\n\r\n")
		}},
		{"first line", token, func(t *testing.T, tok string) *httptest.Server {
			return rawServer(t, tok+"\r\n\r\n")
		}},
		{"header line", token, func(t *testing.T, tok string) *httptest.Server {
			return rawServer(t, "HTTP/1.1 200 OK\r\n"+tok+"\r\nConnection: close\r\n\r\n")
		}},
		{"Content-Length", token, func(t *testing.T, tok string) *httptest.Server {
			return rawServer(t, "HTTP/1.1 200 OK\r\nContent-Length: "+tok+"\r\nConnection: close\r\n\r\n")
		}},
		{"duplicate member name", token, func(t *testing.T, tok string) *httptest.Server {
			return jsonServer(t, 200, `{"active":true,"`+tok+`":1,"`+tok+`":2}`)
		}},
		{"out-of-range member name", token, func(t *testing.T, tok string) *httptest.Server {
			return jsonServer(t, 200, `{"active":true,"`+tok+`":1e999}`)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := tc.srv(t, tc.token)
			var logs bytes.Buffer
			v := newVerifier(t, srv.URL, nil, func(s *Settings) {
				s.ClientID = leakClientID
				s.ClientSecret = leakSecret
				s.Logger = newTestLogger(&logs)
			})
			tok := tc.token
			if tok == leakSecret {
				tok = token
			}
			_, err := v.Verify(context.Background(), tok)
			var ie *IntrospectionError
			require.ErrorAs(t, err, &ie)
			wrapped := fmt.Errorf("serve: %w", err)
			var js bytes.Buffer
			slog.New(slog.NewJSONHandler(&js, nil)).Error("x", slog.Group("g", "err", wrapped))
			for name, text := range map[string]string{
				"Error": err.Error(), "%+v": fmt.Sprintf("%+v", ie), "%#v": fmt.Sprintf("%#v", ie),
				"wrapped": fmt.Sprintf("%v", wrapped), "joined": errors.Join(errors.New("a"), err).Error(),
				"slog JSON": js.String(), "logs": logs.String(),
			} {
				require.NotEmpty(t, text, name)
				for _, f := range append(leakForms(tc.token), tc.token[:12]) {
					assert.NotContains(t, text, f, name)
				}
			}
		})
	}
}

// TestLongMemberNameNeverCarriesTokenPrefix has the authorization server
// send a token longer than the 64 bytes an error quotes of a member name,
// as a duplicate member: no part of it may reach the error, which is
// shortened before the verifier can scrub it.
func TestLongMemberNameNeverCarriesTokenPrefix(t *testing.T) {
	token := strings.Repeat("L", 100) + ".tok"
	srv := jsonServer(t, 200, `{"active":true,"`+token+`":1,"`+token+`":2}`)
	v := newVerifier(t, srv.URL, nil, nil)
	_, err := v.Verify(context.Background(), token)
	var ie *IntrospectionError
	require.ErrorAs(t, err, &ie)
	assert.Equal(t, FailureMalformed, ie.Kind)
	assert.NotContains(t, err.Error(), token[:16])
}

// TestAccessTokenFormatHidesTokenEchoedInClaims has the authorization server
// echo the token in a member of its answer: printing the AccessToken with
// any verb never shows it.
func TestAccessTokenFormatHidesTokenEchoedInClaims(t *testing.T) {
	const token = "Ech0.tok~EN-xyz_987"
	srv := jsonServer(t, 200, `{"active":true,"sub":"`+token+`","username":"`+token+`","scope":"read `+token+`","aud":["`+token+`"],"token":"`+token+`","ext":{"t":["`+token+`"]}}`)
	v := newVerifier(t, srv.URL, nil, nil)
	at, err := v.Verify(context.Background(), token)
	require.NoError(t, err)
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
		for _, val := range []any{at, *at} {
			assert.NotContains(t, fmt.Sprintf(verb, val), token, verb)
		}
	}
	var text, js bytes.Buffer
	slog.New(slog.NewTextHandler(&text, nil)).Info("x", "t", at, "s", struct{ T AccessToken }{*at})
	slog.New(slog.NewJSONHandler(&js, nil)).Info("x", "t", at)
	assert.NotContains(t, text.String(), token)
	assert.NotContains(t, js.String(), token)
	// The claims are still all there for the program.
	assert.Equal(t, token, at.Claims["token"])
	assert.Equal(t, token, at.Subject)
}

// TestSettingsNestedNeverShowSecret prints and logs Settings, a Verifier and
// an AccessToken held in the exported fields of a caller's struct.
func TestSettingsNestedNeverShowSecret(t *testing.T) {
	s := Settings{IntrospectionURL: "https://as.example/introspect", ClientID: leakClientID, ClientSecret: leakSecret}
	v, err := NewVerifier(s)
	require.NoError(t, err)
	defer v.Close()
	type config struct {
		Settings Settings
		Ptr      *Settings
		V        *Verifier
		Any      any
	}
	c := config{Settings: s, Ptr: &s, V: v, Any: s}
	var text, js bytes.Buffer
	slog.New(slog.NewTextHandler(&text, nil)).Info("x", "c", c, slog.Group("g", "s", s))
	slog.New(slog.NewJSONHandler(&js, nil)).Info("x", "c", c, slog.Group("g", "s", s))
	for name, out := range map[string]string{
		"%v": fmt.Sprintf("%v", c), "%+v": fmt.Sprintf("%+v", c), "%#v": fmt.Sprintf("%#v", c),
		"text": text.String(), "json": js.String(),
	} {
		assertNoLeak(t, out, name)
	}
}

// TestEndpointErrorsNeverRepeatURLCredentials writes credentials into
// IntrospectionURL in odd places: no error of NewVerifier or EnvError, and
// no printing of the settings, repeats them.
func TestEndpointErrorsNeverRepeatURLCredentials(t *testing.T) {
	const pw = "pW5ecr3t"
	urls := []string{
		"https://u:" + pw + "@as.example/introspect",
		"//u:" + pw + "@as.example/introspect",
		"https://u:" + pw + "%40x@as.example/introspect",
		"https://u:" + pw + "@[fe80::1%25en0]/introspect",
		"https://u:" + pw + "@as.example:bad/introspect",
		"https://u:" + pw + "@as.example/%zz",
		"https://u:" + pw + "%zz@as.example/",
		"https://u:" + pw + "#x@as.example/",
		"https://u:" + pw + "?x@as.example/",
		"https://u:" + pw + "/x@as.example/",
		"https://u:" + pw + "@",
		"https://:" + pw + "@as.example",
		"https://" + pw + "@as.example",
		"http://u:" + pw + "@as.example/",
		"ftp://u:" + pw + "@as.example/",
		"https:u:" + pw + "@as.example",
		"https:///u:" + pw + "@as.example",
		"https://u:" + pw + "@as example/",
		"https://u:p w" + pw + "@as.example/",
		"https://u:" + pw + "\x7f@as.example/",
		"https://u:" + pw + "@as.example:99999/",
		"https://u:" + pw + "@[::1/",
		"https://u:" + pw + "@[::1]x/",
		" https://u:" + pw + "@as.example/",
		"HTTPS://u:" + pw + "@as.example/",
		"https://u:" + pw + "@@as.example/",
		"https://u@as.example:" + pw + "/",
	}
	for _, raw := range urls {
		t.Run(raw, func(t *testing.T) {
			s := Settings{IntrospectionURL: raw, ClientID: "c", ClientSecret: "s"}
			_, err := NewVerifier(s)
			if strings.HasSuffix(raw, ":"+pw+"/") {
				// Not credentials but a port.
				return
			}
			require.Error(t, err)
			for _, text := range []string{err.Error(), EnvError("", err).Error(), EnvError("NOTES", err).Error(),
				fmt.Sprintf("%+v", s), fmt.Sprintf("%#v", s), slogText(s)} {
				assert.NotContains(t, text, pw)
				assert.NotContains(t, text, "pW5ec")
			}
		})
	}
}

// TestQuotedSecretScrubbed has the server echo a client secret that holds a
// quote, a backslash and a non-ASCII letter in a broken header line, which
// net/http quotes with escapes: the error never shows it.
func TestQuotedSecretScrubbed(t *testing.T) {
	const secret = `se"cr\et-é-x`
	srv := rawServer(t, "HTTP/1.1 200 OK\r\n"+secret+"\r\nConnection: close\r\n\r\n")
	v := newVerifier(t, srv.URL, nil, func(s *Settings) { s.ClientSecret = secret })
	_, err := v.Verify(context.Background(), "tok")
	require.Error(t, err)
	q := strconv.Quote(secret)
	assert.NotContains(t, err.Error(), q[1:len(q)-1])
	assert.NotContains(t, err.Error(), "cr\\\\et")
}
