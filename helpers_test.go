package introspection

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
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

// recordingHandler is a slog.Handler that keeps every record, at every
// level. With panicOn set, it panics on records whose message contains it,
// as a faulty handler might.
type recordingHandler struct {
	mu      sync.Mutex // guards records
	records []slog.Record
	panicOn string
}

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	if h.panicOn != "" && strings.Contains(r.Message, h.panicOn) {
		panic("log handler failed")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r.Clone())
	return nil
}

func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler      { return h }

// matching returns the records whose message contains msg.
func (h *recordingHandler) matching(msg string) []slog.Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []slog.Record
	for _, r := range h.records {
		if strings.Contains(r.Message, msg) {
			out = append(out, r)
		}
	}
	return out
}

// text returns every record as one line of text, attributes included.
func (h *recordingHandler) text() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var b strings.Builder
	for _, r := range h.records {
		b.WriteString(r.Level.String() + " " + r.Message)
		r.Attrs(func(a slog.Attr) bool {
			b.WriteString(" " + a.Key + "=" + a.Value.String())
			return true
		})
		b.WriteString("\n")
	}
	return b.String()
}

// attr returns the value of r's attribute key, and whether it has one.
func attr(r slog.Record, key string) (string, bool) {
	var v string
	var ok bool
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			v, ok = a.Value.String(), true
			return false
		}
		return true
	})
	return v, ok
}

// inFlight returns the number of shared requests of v still running,
// those Forget took out of the table included.
func (v *Verifier) inFlight() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.flights) + len(v.detached)
}

// waiters returns the number of callers that joined the shared request for
// token after the first, or -1 when none runs.
func (v *Verifier) waiters(token string) int {
	v.mu.Lock()
	defer v.mu.Unlock()
	if f := v.flights[token]; f != nil {
		return f.joined
	}
	return -1
}

// waitUntilIdle waits until no shared request of v is running, stores
// included, so that what it counts and stores is final.
func waitUntilIdle(t *testing.T, v *Verifier) {
	t.Helper()
	require.Eventually(t, func() bool { return v.inFlight() == 0 }, 10*time.Second, time.Millisecond)
}
