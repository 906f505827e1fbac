package main

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/mcpauth/introspection/introspectiontest"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMetricsCountPerToolScopeRefusals runs the example
// with -metrics and calls its echo tool with a token that has mcp:tools
// but not mcp:echo: the example answers 403 insufficient_scope, as the
// README shows, and introspection_verifications_total counts the request
// under an outcome that the README's first dashboard query, "rejection
// rate by reason" over outcome=~"rejected|insufficient_scope", selects, so
// that a client refused by the per-tool scopes shows on the dashboard.
func TestMetricsCountPerToolScopeRefusals(t *testing.T) {
	as, endpoint, metricsURL := serveWithMetrics(t)

	client := &http.Client{}
	defer client.CloseIdleConnections()
	tok := as.Issue(introspectiontest.TokenOptions{Subject: "alice", Scopes: []string{"mcp:tools"}, Audience: []string{endpoint}})
	req, err := http.NewRequest(http.MethodPost, endpoint,
		strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := client.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	require.Contains(t, resp.Header.Get("WWW-Authenticate"), `error="insufficient_scope"`)

	resp, err = client.Get(metricsURL)
	require.NoError(t, err)
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	refused := 0.0
	for _, m := range families["introspection_verifications_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "introspection_outcome" && (l.GetValue() == "rejected" || l.GetValue() == "insufficient_scope") {
				refused += m.GetCounter().GetValue()
			}
		}
	}
	assert.Equal(t, 1.0, refused, "the 403 is in the rejection rate: %v", seriesOf(families["introspection_verifications_total"]))
}

// seriesOf returns the labels and values of f's series, for messages.
func seriesOf(f *dto.MetricFamily) []string {
	var out []string
	for _, m := range f.GetMetric() {
		var ls []string
		for _, l := range m.GetLabel() {
			if strings.HasPrefix(l.GetName(), "introspection_") {
				ls = append(ls, l.GetName()+"="+l.GetValue())
			}
		}
		out = append(out, strings.Join(ls, ",")+" "+strconv.FormatFloat(m.GetCounter().GetValue(), 'g', -1, 64))
	}
	return out
}
