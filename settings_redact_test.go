package introspection

import (
	"bytes"
	"fmt"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestSettingsHideUserInfoInIssuerAndAudience shows that fmt and log/slog
// show Issuer and ClientAssertionAudience as they show IntrospectionURL:
// user information written into them is redacted, the rest shown.
func TestSettingsHideUserInfoInIssuerAndAudience(t *testing.T) {
	s := Settings{
		IntrospectionURL:        "https://as.example.com/introspect",
		ClientID:                "rs",
		Issuer:                  "https://issuer-user:issuer-pw-4b1d@as.example.com/realms/mcp",
		ClientAssertionAudience: "https://aud-user:aud-pw-4b1d@as.example.com/token",
	}
	var text, js bytes.Buffer
	slog.New(slog.NewTextHandler(&text, nil)).Info("settings", "s", s)
	slog.New(slog.NewJSONHandler(&js, nil)).Info("settings", "s", s)
	for name, out := range map[string]string{
		"%v": fmt.Sprintf("%v", s), "%+v": fmt.Sprintf("%+v", s), "%#v": fmt.Sprintf("%#v", s),
		"%s": fmt.Sprintf("%s", s), "String": s.String(), "slog text": text.String(), "slog JSON": js.String(),
	} {
		t.Run(name, func(t *testing.T) {
			for _, secret := range []string{"issuer-user", "issuer-pw-4b1d", "aud-user", "aud-pw-4b1d"} {
				assert.NotContains(t, out, secret)
			}
			assert.Contains(t, out, "https://REDACTED@as.example.com/realms/mcp")
			assert.Contains(t, out, "https://REDACTED@as.example.com/token")
		})
	}
}
