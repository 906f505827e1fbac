package mcpgo

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestOptionsNeverPrintTheSessionKey prints Options every way fmt and
// log/slog can and looks for the key's bytes in any spelling.
func TestOptionsNeverPrintTheSessionKey(t *testing.T) {
	key := []byte("0123456789abcdef0123456789ABCDEF-secret")
	o := Options{UserIDWithIssuer: true, SessionKey: key, ResourceMetadataURL: "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"}
	var out []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
		out = append(out, fmt.Sprintf(verb, o), fmt.Sprintf(verb, &o))
	}
	var logged bytes.Buffer
	for _, h := range []slog.Handler{slog.NewTextHandler(&logged, nil), slog.NewJSONHandler(&logged, nil)} {
		slog.New(h).Info("options", "opts", o, "ptr", &o)
	}
	out = append(out, logged.String())
	all := strings.Join(out, "\n")
	for _, spelling := range []string{string(key), hex.EncodeToString(key), strings.ToUpper(hex.EncodeToString(key)), "secret", fmt.Sprint([]byte(key)[:4])[1:8]} {
		assert.NotContains(t, all, spelling)
	}
	assert.Contains(t, all, "REDACTED(39 bytes)")
	assert.Contains(t, fmt.Sprint(Options{}), "SessionKey:random")
}
