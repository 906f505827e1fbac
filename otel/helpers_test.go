package otel

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpauth/introspection"
	"github.com/mcpauth/introspection/introspectiontest"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// harness is an Observer recording into the SDK's in-memory reader and
// span recorder.
type harness struct {
	obs    *Observer
	reader *sdkmetric.ManualReader
	spans  *tracetest.SpanRecorder
}

func newHarness(t testing.TB, opts ...sdktrace.TracerProviderOption) *harness {
	t.Helper()
	return newHarnessWith(t, Options{}, opts...)
}

// newHarnessWith is newHarness with the Observer's options o, whose
// providers it sets.
func newHarnessWith(t testing.TB, o Options, opts ...sdktrace.TracerProviderOption) *harness {
	t.Helper()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(append(opts, sdktrace.WithSpanProcessor(rec))...)
	t.Cleanup(func() {
		_ = mp.Shutdown(context.Background())
		_ = tp.Shutdown(context.Background())
	})
	o.MeterProvider, o.TracerProvider = mp, tp
	obs, err := New(o)
	require.NoError(t, err)
	return &harness{obs: obs, reader: reader, spans: rec}
}

// collect returns every metric recorded so far, by name.
func (h *harness) collect(t testing.TB) map[string]metricdata.Metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, h.reader.Collect(context.Background(), &rm))
	out := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		require.Equal(t, ScopeName, sm.Scope.Name)
		for _, m := range sm.Metrics {
			out[m.Name] = m
		}
	}
	return out
}

func attrString(set attribute.Set) string {
	var kv []string
	for _, a := range set.ToSlice() {
		kv = append(kv, string(a.Key)+"="+a.Value.String())
	}
	sort.Strings(kv)
	return strings.Join(kv, " ")
}

// points returns the data points of m by their attributes.
func points(m metricdata.Metrics) map[string]float64 {
	out := map[string]float64{}
	switch d := m.Data.(type) {
	case nil: // not collected
	case metricdata.Sum[int64]:
		for _, p := range d.DataPoints {
			out[attrString(p.Attributes)] = float64(p.Value)
		}
	case metricdata.Gauge[int64]:
		for _, p := range d.DataPoints {
			out[attrString(p.Attributes)] = float64(p.Value)
		}
	case metricdata.Histogram[float64]:
		for _, p := range d.DataPoints {
			out[attrString(p.Attributes)] = float64(p.Count)
		}
	default:
		panic(fmt.Sprintf("unexpected data %T", m.Data))
	}
	return out
}

// value returns the value of m's point with attrs in collected, 0 when
// there is none.
func value(collected map[string]metricdata.Metrics, name, attrs string) float64 {
	m, ok := collected[name]
	if !ok {
		return 0
	}
	return points(m)[attrs]
}

// spanView is an ended span as the tests compare it.
type spanView struct {
	Name   string
	Kind   string
	Attrs  map[string]string
	Events []string // name and attributes of each
	Status string   // code and description
	Parent string   // the parent's name, "" for a root
}

// ended returns the spans that ended, each with its parent's name.
func (h *harness) ended() []spanView {
	spans := h.spans.Ended()
	names := map[string]string{}
	for _, s := range spans {
		names[s.SpanContext().SpanID().String()] = s.Name()
	}
	var out []spanView
	for _, s := range spans {
		v := spanView{Name: s.Name(), Kind: s.SpanKind().String(), Attrs: map[string]string{},
			Status: s.Status().Code.String()}
		if s.Status().Description != "" {
			v.Status += " " + s.Status().Description
		}
		for _, a := range s.Attributes() {
			v.Attrs[string(a.Key)] = a.Value.String()
		}
		for _, e := range s.Events() {
			v.Events = append(v.Events, e.Name+" "+attrString(attribute.NewSet(e.Attributes...)))
		}
		if s.Parent().IsValid() {
			v.Parent = names[s.Parent().SpanID().String()]
			if v.Parent == "" {
				v.Parent = "?"
			}
		}
		out = append(out, v)
	}
	return out
}

// named returns the spans of name.
func named(spans []spanView, name string) []spanView {
	var out []spanView
	for _, s := range spans {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

// fakeClock is a settable clock for Settings.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)} }

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

// newAS starts an introspectiontest server on clock.
func newAS(t testing.TB, clock *fakeClock) *introspectiontest.Server {
	t.Helper()
	as := introspectiontest.NewServer()
	if clock != nil {
		as.SetNow(clock.Now)
	}
	t.Cleanup(as.Close)
	return as
}

// newVerifier returns a verifier of url observed by obs, after edit
// changes its settings.
func newVerifier(t testing.TB, url string, obs introspection.Observer, edit func(*introspection.Settings)) *introspection.Verifier {
	t.Helper()
	s := introspection.Settings{
		IntrospectionURL: url,
		ClientID:         introspectiontest.ClientID,
		ClientSecret:     introspectiontest.ClientSecret,
		Observer:         obs,
	}
	if edit != nil {
		edit(&s)
	}
	v, err := introspection.NewVerifier(s)
	require.NoError(t, err)
	t.Cleanup(func() { _ = v.Close() })
	return v
}

// mapCache is a Cache in a map, whose calls fail while fail is set.
type mapCache struct {
	mu   sync.Mutex
	m    map[string][]byte
	fail bool
}

func newMapCache() *mapCache { return &mapCache{m: map[string][]byte{}} }

func (c *mapCache) Get(_ context.Context, key string) ([]byte, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail {
		return nil, false, fmt.Errorf("store is down")
	}
	b, ok := c.m[key]
	return b, ok, nil
}

func (c *mapCache) Set(_ context.Context, key string, value []byte, _ time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail {
		return fmt.Errorf("store is down")
	}
	c.m[key] = value
	return nil
}

func (c *mapCache) Delete(_ context.Context, key string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, key)
	return nil
}

func (c *mapCache) put(key string, value []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[key] = value
}

func (c *mapCache) setFail(f bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fail = f
}

// jsonHandler answers every request with status and body as JSON.
func jsonHandler(status int, body string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	})
}

// dump returns everything the harness exported, metrics and spans, as
// text: names, units, descriptions, attribute keys and values, exemplars,
// span names, attributes, events, links and statuses.
func (h *harness) dump(t testing.TB) string {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, h.reader.Collect(context.Background(), &rm))
	b, err := json.Marshal(rm)
	require.NoError(t, err)
	stubs := tracetest.SpanStubsFromReadOnlySpans(h.spans.Ended())
	s, err := json.Marshal(stubs)
	require.NoError(t, err)
	return string(b) + "\n" + string(s) + "\n" + fmt.Sprintf("%+v\n%+v", rm, stubs)
}
