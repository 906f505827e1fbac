package introspection_test

import (
	"fmt"
	"os"

	"github.com/mcpauth/introspection"
)

// EnvError names the environment variable to set when NewVerifier refuses
// settings read by SettingsFromEnv.
func ExampleEnvError() {
	if err := os.Setenv("NOTES_URL", "https://as.example.com/introspect"); err != nil {
		fmt.Println(err)
		return
	}
	defer os.Unsetenv("NOTES_URL")
	// NOTES_CLIENT_ID and NOTES_CLIENT_SECRET are not set.

	s, err := introspection.SettingsFromEnv("NOTES")
	if err != nil {
		fmt.Println(err)
		return
	}
	v, err := introspection.NewVerifier(s)
	if err != nil {
		fmt.Println(err)
		fmt.Println(introspection.EnvError("NOTES", err))
		return
	}
	defer v.Close()
	// Output:
	// introspection: ClientID is required
	// introspection: NOTES_CLIENT_ID is not set
}
