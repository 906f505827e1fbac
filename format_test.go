package introspection

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestFormattingNeverShowsSecretOrToken formats every type a caller may
// print or log, with every fmt verb and both slog handlers, while tokens
// are in flight, and finds neither the client secret (in any encoding) nor
// a token.
func TestFormattingNeverShowsSecretOrToken(t *testing.T) {
	for _, method := range []ClientAuthMethod{ClientSecretBasic, ClientSecretPost} {
		t.Run(string(method), func(t *testing.T) {
			ls := newLeakServer(t)
			s := Settings{
				IntrospectionURL: ls.URL + "/introspect",
				ClientID:         leakClientID,
				ClientSecret:     leakSecret,
				ClientAuthMethod: method,
				CacheTTL:         1 << 30,
			}
			v, err := NewVerifier(s)
			require.NoError(t, err)
			t.Cleanup(func() { _ = v.Close() })

			// A token in flight: its request waits at the server.
			var wg sync.WaitGroup
			wg.Go(func() {
				_, err := v.Verify(context.Background(), heldToken)
				assert.NoError(t, err)
			})
			<-ls.arrived

			tok, err := v.Verify(context.Background(), okToken)
			require.NoError(t, err)
			require.Equal(t, okToken, tok.Token)
			_, failErr := v.Verify(context.Background(), failToken)
			var ie *IntrospectionError
			require.ErrorAs(t, failErr, &ie)
			scoped := newVerifier(t, s.IntrospectionURL, nil, func(st *Settings) {
				*st = s
				st.RequiredScopes = []string{"admin"}
			})
			_, scopeErr := scoped.Verify(context.Background(), okToken)
			var se *ScopeError
			require.ErrorAs(t, scopeErr, &se)

			values := []struct {
				name string
				v    any
			}{
				{"*Verifier", v},
				{"AccessToken", *tok},
				{"*AccessToken", tok},
				{"*IntrospectionError", ie},
				{"error from Verify", failErr},
				{"*ScopeError", se},
				{"Settings", s},
				{"*Settings", &s},
				{"Stats", v.Stats()},
			}
			for _, val := range values {
				t.Run(val.name, func(t *testing.T) {
					for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
						assertNoLeak(t, fmt.Sprintf(verb, val.v), verb)
					}
					for _, h := range []struct {
						name string
						new  func(*bytes.Buffer) slog.Handler
					}{
						{"text", func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) }},
						{"json", func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) }},
					} {
						var out bytes.Buffer
						slog.New(h.new(&out)).Info("value", "value", val.v)
						require.NotEmpty(t, out.String())
						assertNoLeak(t, out.String(), "slog "+h.name)
					}
				})
			}
			// The redacted forms still say what the value is.
			assert.Contains(t, fmt.Sprintf("%+v", v), leakClientID)
			assert.Contains(t, fmt.Sprintf("%#v", *tok), "ok-client")
			assert.Contains(t, fmt.Sprintf("%+v", tok), "alice")

			close(ls.release)
			wg.Wait()
		})
	}
}

func slogText(v any) string {
	var b bytes.Buffer
	slog.New(slog.NewTextHandler(&b, nil)).Info("x", "v", v)
	return b.String()
}

// TestFormattingNilValues shows that nil pointers format as <nil> rather
// than panicking.
func TestFormattingNilValues(t *testing.T) {
	var v *Verifier
	var tok *AccessToken
	for _, val := range []any{v, tok} {
		assert.Equal(t, "<nil>", fmt.Sprintf("%v", val))
		assert.Equal(t, "<nil>", fmt.Sprintf("%+v", val))
		assert.NotContains(t, slogText(val), "panic")
	}
	assert.Equal(t, "<nil>", tok.String())
	assert.Equal(t, "<nil>", v.String())
}
