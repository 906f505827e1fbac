package introspection

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/mcpauth/introspection/introspectiontest"
	"github.com/stretchr/testify/require"
)

// fakeClock is a settable clock for Settings.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// newAS starts an introspectiontest server that follows clock.
func newAS(t *testing.T, clock *fakeClock) *introspectiontest.Server {
	t.Helper()
	as := introspectiontest.NewServer()
	if clock != nil {
		as.SetNow(clock.Now)
	}
	t.Cleanup(as.Close)
	return as
}

// newVerifier builds a verifier for as's endpoint, after edit changes the
// settings.
func newVerifier(t *testing.T, url string, clock *fakeClock, edit func(*Settings)) *Verifier {
	t.Helper()
	s := Settings{
		IntrospectionURL: url,
		ClientID:         introspectiontest.ClientID,
		ClientSecret:     introspectiontest.ClientSecret,
	}
	if clock != nil {
		s.Now = clock.Now
	}
	if edit != nil {
		edit(&s)
	}
	v, err := NewVerifier(s)
	require.NoError(t, err)
	t.Cleanup(func() { _ = v.Close() })
	return v
}

// jsonServer answers every request with status and body as JSON.
func jsonServer(t *testing.T, status int, body string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func writeFile(path, content string) error {
	return os.WriteFile(path, []byte(content), 0o600)
}

func newTestLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
