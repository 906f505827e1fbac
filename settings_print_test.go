package introspection

import (
	"bytes"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// TestSettingsShowTheOutageSettings shows that fmt and log/slog of Settings
// show the breaker's settings and StaleIfError, so that a logged
// configuration tells how the verifier behaves in an outage.
func TestSettingsShowTheOutageSettings(t *testing.T) {
	s := Settings{BreakerThreshold: 7, BreakerMinBackoff: 2 * time.Second, BreakerMaxBackoff: time.Minute, StaleIfError: 5 * time.Minute}
	text := fmt.Sprint(s)
	for _, want := range []string{"BreakerThreshold:7", "BreakerMinBackoff:2s", "BreakerMaxBackoff:1m0s", "StaleIfError:5m0s"} {
		assert.Contains(t, text, want)
	}
	var logs bytes.Buffer
	slog.New(slog.NewTextHandler(&logs, nil)).Info("settings", "s", s)
	for _, want := range []string{"s.breaker_threshold=7", "s.breaker_min_backoff=2s", "s.breaker_max_backoff=1m0s", "s.stale_if_error=5m0s"} {
		assert.Contains(t, logs.String(), want)
	}
}
