package main

import (
	"context"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpauth/introspection/introspectiontest"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// dashboardQueries returns the PromQL queries of the README's
// Observability section, by the comment line above each.
func dashboardQueries(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	_, section, ok := strings.Cut(string(b), "\n## Observability\n")
	require.True(t, ok, "the README has an Observability section")
	_, block, ok := strings.Cut(section, "```promql\n")
	require.True(t, ok, "with a promql block")
	block, _, ok = strings.Cut(block, "```")
	require.True(t, ok)
	queries := map[string]string{}
	var name string
	for _, line := range strings.Split(strings.TrimSpace(block), "\n") {
		if c, ok := strings.CutPrefix(line, "# "); ok {
			name = c
			continue
		}
		queries[name] += line
	}
	return queries
}

var (
	selectorRE = regexp.MustCompile(`([a-z_:][a-z0-9_:]*)\{([^}]*)\}|([a-z_:][a-z0-9_:]*)\[`)
	matcherRE  = regexp.MustCompile(`([a-z_][a-z0-9_]*)\s*(?:=~|!~|!=|=)`)
	byRE       = regexp.MustCompile(`by \(([^)]*)\)`)
)

// queryNames returns the metric names a query selects, each with the
// label names it matches on or groups by.
func queryNames(q string) map[string][]string {
	var by []string
	for _, m := range byRE.FindAllStringSubmatch(q, -1) {
		for _, l := range strings.Split(m[1], ",") {
			by = append(by, strings.TrimSpace(l))
		}
	}
	out := map[string][]string{}
	for _, m := range selectorRE.FindAllStringSubmatch(q, -1) {
		name := m[1] + m[3]
		labels := append([]string(nil), by...)
		for _, l := range matcherRE.FindAllStringSubmatch(m[2], -1) {
			labels = append(labels, l[1])
		}
		out[name] = append(out[name], labels...)
	}
	return out
}

// serveWithMetrics runs the example with -metrics against a new
// introspectiontest server named by INTROSPECTION_* alone (every other
// INTROSPECTION_ and MCP_ variable unset), stops it when t ends, and
// returns the server, the MCP endpoint and the metrics URL it printed.
func serveWithMetrics(t *testing.T) (as *introspectiontest.Server, endpoint, metricsURL string) {
	t.Helper()
	as = introspectiontest.NewServer()
	t.Cleanup(as.Close)
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "INTROSPECTION_") || strings.HasPrefix(name, "MCP_") {
			t.Setenv(name, "") // restored when the test ends
			require.NoError(t, os.Unsetenv(name))
		}
	}
	t.Setenv("INTROSPECTION_URL", as.IntrospectionURL)
	t.Setenv("INTROSPECTION_CLIENT_ID", introspectiontest.ClientID)
	t.Setenv("INTROSPECTION_CLIENT_SECRET", introspectiontest.ClientSecret)
	t.Setenv("INTROSPECTION_ISSUER", as.Issuer)

	ctx, cancel := context.WithCancel(context.Background())
	out := &lockedBuffer{}
	done := make(chan error, 1)
	go func() { done <- serve(ctx, config{addr: "127.0.0.1:0", metrics: true}, out) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "Accepted token audience: ") },
		10*time.Second, 5*time.Millisecond, "the server printed no endpoint")
	endpoint = printedAfter(t, out.String(), "MCP endpoint")
	metricsURL = printedAfter(t, out.String(), "Metrics")
	return as, endpoint, metricsURL
}

// TestMetricsServesTheDashboardQueries runs the example with -metrics
// against an authorization server, sends requests that make it accept,
// reject, hit its cache and see the server fail, and scrapes /metrics:
// every metric name and label that the README's five dashboard queries
// use is served.
func TestMetricsServesTheDashboardQueries(t *testing.T) {
	queries := dashboardQueries(t)
	require.Len(t, queries, 5)

	as, endpoint, metricsURL := serveWithMetrics(t)
	require.Equal(t, strings.TrimSuffix(endpoint, mcpPath)+metricsPath, metricsURL)

	client := &http.Client{}
	defer client.CloseIdleConnections()
	call := func(token string) {
		req, err := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(`{}`))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		require.NoError(t, err)
		_ = resp.Body.Close()
	}
	scrape := func() map[string]*dto.MetricFamily {
		resp, err := client.Get(metricsURL)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		parser := expfmt.NewTextParser(model.UTF8Validation)
		families, err := parser.TextToMetricFamilies(resp.Body)
		require.NoError(t, err)
		return families
	}
	tok := as.Issue(introspectiontest.TokenOptions{Subject: "alice", Scopes: []string{"mcp:tools"}, Audience: []string{endpoint}})
	call(tok) // accepted, a cache miss
	// The answer is stored once the request has answered its callers.
	require.Eventually(t, func() bool { return sample(scrape(), "introspection_cache_entries", nil) == 1 },
		10*time.Second, 5*time.Millisecond)
	call(tok)       // a hit
	call("unknown") // rejected: inactive
	as.SetFault(introspectiontest.Fault{Status: http.StatusServiceUnavailable})
	call("another") // the server fails
	families := scrape()

	for name, q := range queries {
		used := queryNames(q)
		require.NotEmpty(t, used, "%s: %s names a metric", name, q)
		for metric, labels := range used {
			family, kind := familyOf(families, metric)
			if !assert.NotNil(t, family, "%s: %s is served", name, metric) {
				continue
			}
			for _, l := range labels {
				if l == "le" {
					assert.Equal(t, dto.MetricType_HISTOGRAM, family.GetType(), "%s: le of a histogram", name)
					assert.Equal(t, "_bucket", kind)
					continue
				}
				assert.True(t, hasLabel(family, l), "%s: %s has the label %s", name, metric, l)
			}
		}
	}
	// What the requests above make the metrics say.
	assert.Equal(t, 1.0, sample(families, "introspection_verifications_total",
		map[string]string{"introspection_outcome": "rejected", "introspection_reason": "inactive"}))
	assert.Equal(t, 1.0, sample(families, "introspection_cache_lookups_total", map[string]string{"introspection_cache_result": "hit"}))
	assert.Equal(t, 1.0, sample(families, "introspection_breaker_state", map[string]string{"introspection_breaker_state": "closed"}))
}

// familyOf returns the family a series name belongs to, and the
// histogram suffix the name has.
func familyOf(families map[string]*dto.MetricFamily, name string) (*dto.MetricFamily, string) {
	if f, ok := families[name]; ok {
		return f, ""
	}
	for _, suffix := range []string{"_bucket", "_count", "_sum"} {
		if base, ok := strings.CutSuffix(name, suffix); ok {
			if f, ok := families[base]; ok && f.GetType() == dto.MetricType_HISTOGRAM {
				return f, suffix
			}
		}
	}
	return nil, ""
}

// hasLabel reports whether a series of f has the label name.
func hasLabel(f *dto.MetricFamily, name string) bool {
	for _, m := range f.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == name {
				return true
			}
		}
	}
	return false
}

// sample returns the value of the series of family name with labels, or
// -1 when there is none.
func sample(families map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	f, ok := families[name]
	if !ok {
		return -1
	}
	for _, m := range f.GetMetric() {
		match := 0
		for _, l := range m.GetLabel() {
			if v, ok := labels[l.GetName()]; ok && v == l.GetValue() {
				match++
			}
		}
		if match == len(labels) {
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return -1
}

// printedAfter returns what the server printed after label and ": ".
func printedAfter(t *testing.T, out, label string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(label) + `: (\S+)$`).FindStringSubmatch(out)
	require.NotNil(t, m, "no %q in %q", label, out)
	return m[1]
}

// lockedBuffer is a strings.Builder that a test reads while the server
// writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
