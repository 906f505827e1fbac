package mcpgo

import (
	"fmt"
	"log/slog"
)

// String returns a description of o with SessionKey redacted: it says only
// whether a key is set and how long it is.
func (o Options) String() string {
	return fmt.Sprintf("mcpgo.Options{UserIDWithIssuer:%t SessionKey:%s ResourceMetadataURL:%q}",
		o.UserIDWithIssuer, o.sessionKey(), o.ResourceMetadataURL)
}

// Format implements [fmt.Formatter] so that every verb, %#v and %x
// included, prints the redacted form of [Options.String].
func (o Options) Format(f fmt.State, _ rune) {
	fmt.Fprint(f, o.String())
}

// LogValue implements [slog.LogValuer] with SessionKey redacted.
func (o Options) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Bool("user_id_with_issuer", o.UserIDWithIssuer),
		slog.String("session_key", o.sessionKey()),
		slog.String("resource_metadata_url", o.ResourceMetadataURL),
	)
}

// sessionKey describes SessionKey without its bytes.
func (o Options) sessionKey() string {
	if o.SessionKey == nil {
		return "random"
	}
	return fmt.Sprintf("REDACTED(%d bytes)", len(o.SessionKey))
}
