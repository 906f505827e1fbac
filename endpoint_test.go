package introspection

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestEndpointErrorsNeverRepeatCredentials writes credentials into
// IntrospectionURL in ways that fail validation: no error, and no fmt
// output of the Settings, repeats the user name or the password.
func TestEndpointErrorsNeverRepeatCredentials(t *testing.T) {
	tests := []struct {
		name, url string
		leaks     []string // parts of the credentials that must not show
		want      string   // what the error must still say
	}{
		{"parse error in host", "https://alice-user:pa55word@[::1", []string{"alice-user", "pa55word"}, "missing ']' in host"},
		{"no host", "https://alice-user:pa55word@/path", []string{"alice-user", "pa55word"}, "IntrospectionURL"},
		{"empty host", "https://alice-user:pa55word@", []string{"alice-user", "pa55word"}, "IntrospectionURL"},
		{"credentials over http", "http://alice-user:pa55word@example.com", []string{"alice-user", "pa55word"}, "must not carry credentials"},
		{"credentials over https", "https://alice-user:pa55word@example.com/i", []string{"alice-user", "pa55word"}, "must not carry credentials"},
		{"other scheme", "ftp://alice-user:pa55word@example.com", []string{"alice-user", "pa55word"}, "IntrospectionURL"},
		{"bad port after credentials", "https://alice-user:pa55word@host:bad", []string{"alice-user", "pa55word"}, "invalid port"},
		{"solidus in password", "https://alice-user:pa55/word@host", []string{"alice-user", "pa55"}, "IntrospectionURL"},
		{"bad escape in password", "https://alice-user:pa55%zzword@host", []string{"alice-user", "pa55", "%zz"}, "IntrospectionURL"},
		{"space in password", "https://alice-user:pa55 word@host", []string{"alice-user", "pa55"}, "IntrospectionURL"},
		{"no scheme", "alice-user:pa55word@host", []string{"alice-user", "pa55word"}, "IntrospectionURL"},
		{"no scheme, slashes", "//alice-user:pa55word@host", []string{"alice-user", "pa55word"}, "IntrospectionURL"},
		{"at sign in password", "https://alice-user:pa55@word@[::1", []string{"alice-user", "pa55", "word@"}, "missing ']' in host"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := Settings{IntrospectionURL: tc.url, ClientID: "rs", ClientSecret: "s"}
			_, err := NewVerifier(s)
			require.Error(t, err)
			for name, text := range map[string]string{
				"Error": err.Error(), "EnvError": EnvError("", err).Error(),
				"%+v of Settings": fmt.Sprintf("%+v", s), "slog of Settings": slogText(s),
			} {
				for _, l := range tc.leaks {
					assert.NotContains(t, text, l, name)
				}
			}
			assert.Contains(t, err.Error(), tc.want)
			assert.True(t, strings.HasPrefix(err.Error(), "introspection: "), err.Error())
		})
	}
}

// TestEndpointErrorsKeepTheURLWithoutCredentials shows that a URL without
// credentials is still quoted in full, so the error points at the mistake.
func TestEndpointErrorsKeepTheURLWithoutCredentials(t *testing.T) {
	tests := []struct{ url, want string }{
		{"https://as.example.com/%zz", `"https://as.example.com/%zz"`},
		{"https:///introspect", `"https:///introspect" has no host`},
		{"ftp://as.example.com/i", `"ftp://as.example.com/i" must use https`},
		{"http://as.example.com/i", `"http://as.example.com/i" uses http`},
		{"https://user:pw@[::1", `"https://REDACTED@[::1"`},
	}
	for _, tc := range tests {
		t.Run(tc.url, func(t *testing.T) {
			_, err := NewVerifier(Settings{IntrospectionURL: tc.url, ClientID: "rs", ClientSecret: "s"})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}
