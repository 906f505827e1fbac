// Package otel reports what an introspection [introspection.Verifier] does
// as OpenTelemetry metrics and traces: it is an [introspection.Observer].
//
//	obs, err := otel.New(otel.Options{}) // the global MeterProvider and TracerProvider
//	if err != nil {
//		return err
//	}
//	settings.Observer = obs
//	v, err := introspection.NewVerifier(settings)
//	if err != nil {
//		return err
//	}
//	defer obs.Watch(v)() // the cache-size and breaker-state gauges
//
// The metrics, spans and attributes it makes, their names, units and
// attribute values, are listed in the module's README and are a
// compatibility promise: changing one is a breaking change. Attribute
// values come from small fixed sets (outcome, reason, cache result, status
// class, failure kind, breaker state, cache operation), so the number of
// series stays bounded whatever the tokens and the authorization server's
// answers. No token, subject, client secret, URL query or text of the
// authorization server is ever put in a metric, a span or an attribute.
package otel

import (
	"context"
	"net"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/mcpauth/introspection"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// ScopeName is the instrumentation scope of the meter and the tracer.
const ScopeName = "github.com/mcpauth/introspection/otel"

// Metric names.
const (
	metricVerifications = "introspection.verifications"
	metricCacheLookups  = "introspection.cache.lookups"
	metricCacheErrors   = "introspection.cache.errors"
	metricCacheEntries  = "introspection.cache.entries"
	metricCollapsed     = "introspection.collapsed_waiters"
	metricUpstream      = "introspection.upstream.duration"
	metricTransitions   = "introspection.breaker.transitions"
	metricBreakerState  = "introspection.breaker.state"
	metricMetadata      = "introspection.metadata.fetches"
)

// Span names.
const (
	spanVerify    = "introspection.verify"
	spanCacheCall = "introspection.cache." // and the operation
	spanMetadata  = "introspection.metadata.fetch"
)

// Attribute keys.
const (
	keyOutcome       = attribute.Key("introspection.outcome")
	keyReason        = attribute.Key("introspection.reason")
	keyCacheResult   = attribute.Key("introspection.cache.result")
	keyCacheOp       = attribute.Key("introspection.cache.operation")
	keyStatusClass   = attribute.Key("introspection.upstream.status_class")
	keyBreakerState  = attribute.Key("introspection.breaker.state")
	keyBreakerFrom   = attribute.Key("introspection.breaker.previous_state")
	keyCollapsed     = attribute.Key("introspection.collapsed_waiter")
	eventBreaker     = "introspection.breaker.transition"
	eventCacheError  = "introspection.cache.error"
	otherValue       = "other"
	noStatusClass    = "none"
	collapsedPresent = true
)

// UpstreamBuckets are the bounds, in seconds, of the buckets of the
// introspection.upstream.duration histogram: those OpenTelemetry's HTTP
// semantic conventions give http.client.request.duration, from 5 ms to
// 10 s, the verifier's default Timeout.
var UpstreamBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}

// Options configure [New].
type Options struct {
	// MeterProvider makes the metrics. Nil means the global one,
	// otel.GetMeterProvider().
	MeterProvider metric.MeterProvider
	// TracerProvider makes the spans. Nil means the global one,
	// otel.GetTracerProvider(). With a [noop.TracerProvider] no span is
	// started at all, which spares a verification the context that would
	// hold one.
	TracerProvider trace.TracerProvider
	// SamplerIgnoresParent says that the TracerProvider's sampler may
	// sample a span whose parent is not sampled, as the SDK's
	// AlwaysSample and TraceIDRatioBased do when not wrapped in
	// ParentBased. False, the default, means it follows the parent, as
	// the SDK's default sampler, ParentBased, does: where the context of
	// a verification already holds a valid span context that is not
	// sampled, no span would be recorded, so the Observer starts none and
	// returns the context as it was, which spares the verification the
	// cost of an unsampled span. The metrics are recorded either way.
	SamplerIgnoresParent bool
}

// Observer is an [introspection.Observer] that records metrics and spans.
// Set it as Settings.Observer of one or more verifiers, and pass each to
// [Observer.Watch] for the gauges. An Observer is safe for concurrent use
// by multiple goroutines.
type Observer struct {
	introspection.NopObserver

	tracer      trace.Tracer // nil when the TracerProvider is a no-op one: no span is started
	anyParent   bool         // Options.SamplerIgnoresParent
	cacheErrors metric.Int64Counter
	collapsed   metric.Int64Counter
	upstream    metric.Float64Histogram
	transitions metric.Int64Counter
	metadata    metric.Int64Counter
	attrs       *attrSets

	mu      sync.Mutex // guards watched
	watched map[*introspection.Verifier]int
}

// New returns an Observer that records on the providers of opts.
func New(opts Options) (*Observer, error) {
	mp, tp := opts.MeterProvider, opts.TracerProvider
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	meter := mp.Meter(ScopeName)
	o := &Observer{attrs: newAttrSets(), watched: make(map[*introspection.Verifier]int)}
	if _, off := tp.(noop.TracerProvider); !off {
		o.tracer = tp.Tracer(ScopeName)
	}
	o.anyParent = opts.SamplerIgnoresParent
	var errs [10]error
	var verifications, lookups metric.Int64ObservableCounter
	verifications, errs[0] = meter.Int64ObservableCounter(metricVerifications, metric.WithUnit("{verification}"),
		metric.WithDescription("Verifications of tokens by their outcome and its reason."))
	lookups, errs[1] = meter.Int64ObservableCounter(metricCacheLookups, metric.WithUnit("{lookup}"),
		metric.WithDescription("Lookups of tokens in the cache by what they found."))
	o.cacheErrors, errs[2] = meter.Int64Counter(metricCacheErrors, metric.WithUnit("{error}"),
		metric.WithDescription("Failed calls of a caller's cache, and stored values that are not answers."))
	o.collapsed, errs[3] = meter.Int64Counter(metricCollapsed, metric.WithUnit("{verification}"),
		metric.WithDescription("Verifications that got the answer of an introspection request another had started."))
	o.upstream, errs[4] = meter.Float64Histogram(metricUpstream, metric.WithUnit("s"),
		metric.WithDescription("Duration of introspection requests to the authorization server."),
		metric.WithExplicitBucketBoundaries(UpstreamBuckets...))
	o.transitions, errs[5] = meter.Int64Counter(metricTransitions, metric.WithUnit("{transition}"),
		metric.WithDescription("Transitions of the circuit breaker by the state it went to."))
	var entries, states metric.Int64ObservableGauge
	entries, errs[6] = meter.Int64ObservableGauge(metricCacheEntries, metric.WithUnit("{entry}"),
		metric.WithDescription("Entries in the built-in caches of the watched verifiers."))
	states, errs[7] = meter.Int64ObservableGauge(metricBreakerState, metric.WithUnit("{breaker}"),
		metric.WithDescription("Watched verifiers whose circuit breaker is in each state."))
	o.metadata, errs[9] = meter.Int64Counter(metricMetadata, metric.WithUnit("{fetch}"),
		metric.WithDescription("Fetches of the issuer's metadata by why they failed."))
	_, errs[8] = meter.RegisterCallback(o.observe(verifications, lookups, entries, states),
		verifications, lookups, entries, states)
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return o, nil
}

// Watch adds v to the verifiers whose cache size and breaker state the
// gauges report, until stop is called. A verifier watched twice is
// reported once and stays watched until both stops.
func (o *Observer) Watch(v *introspection.Verifier) (stop func()) {
	o.mu.Lock()
	o.watched[v]++
	o.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			o.mu.Lock()
			defer o.mu.Unlock()
			if o.watched[v]--; o.watched[v] <= 0 {
				delete(o.watched, v)
			}
		})
	}
}

// observe returns the callback that reports the observable counters,
// each count that is not zero, and the gauges.
func (o *Observer) observe(verifications, lookups metric.Int64ObservableCounter, entries, states metric.Int64ObservableGauge) metric.Callback {
	return func(_ context.Context, obs metric.Observer) error {
		for _, v := range o.attrs.verdicts {
			if n := v.n.Load(); n > 0 {
				obs.ObserveInt64(verifications, n, v.observe...)
			}
		}
		for _, l := range o.attrs.lookups {
			if n := l.n.Load(); n > 0 {
				obs.ObserveInt64(lookups, n, l.observe...)
			}
		}
		o.mu.Lock()
		vs := make([]*introspection.Verifier, 0, len(o.watched))
		for v := range o.watched {
			vs = append(vs, v)
		}
		o.mu.Unlock()
		if len(vs) == 0 {
			return nil
		}
		var n int64
		count := map[introspection.BreakerState]int64{}
		for _, v := range vs {
			st := v.Stats()
			n += int64(max(st.CacheEntries, 0)) // -1: a caller's Cache, not counted
			count[st.Breaker]++
		}
		obs.ObserveInt64(entries, n)
		for _, s := range breakerStates {
			obs.ObserveInt64(states, count[s], o.attrs.breaker[s])
		}
		return nil
	}
}

// ownSpan is the key under which a Start method keeps the span it started
// when that span records, so that the End method ends that span and no
// other (when the Start method did not run, the context holds the
// caller's span).
type ownSpan struct{ kind int }

var (
	verifySpan    = ownSpan{0}
	upstreamSpan  = ownSpan{1}
	cacheCallSpan = ownSpan{2}
)

// tracing reports whether a span started in ctx may be sampled: spans
// are on, and ctx holds no span context that is valid and not sampled,
// unless the sampler ignores the parent (Options.SamplerIgnoresParent).
func (o *Observer) tracing(ctx context.Context) bool {
	if o.tracer == nil {
		return false
	}
	if o.anyParent {
		return true
	}
	sc := trace.SpanContextFromContext(ctx)
	return !sc.IsValid() || sc.IsSampled()
}

// start starts a span named name with opts and returns the context that
// holds it, marked as ours under key when it records; or ctx as it was
// when no span may be sampled there.
func (o *Observer) start(ctx context.Context, key ownSpan, name string, opts ...trace.SpanStartOption) context.Context {
	if !o.tracing(ctx) {
		return ctx
	}
	ctx, span := o.tracer.Start(ctx, name, opts...)
	if span.IsRecording() {
		ctx = context.WithValue(ctx, key, span)
	}
	return ctx
}

// spanOf returns the recording span a Start method kept under key in ctx.
func spanOf(ctx context.Context, key ownSpan) (trace.Span, bool) {
	s, ok := ctx.Value(key).(trace.Span)
	return s, ok
}

var verifyStart = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindInternal)}

// VerifyStart starts the span introspection.verify.
func (o *Observer) VerifyStart(ctx context.Context) context.Context {
	return o.start(ctx, verifySpan, spanVerify, verifyStart...)
}

// VerifyEnd counts the verdict and ends the span.
func (o *Observer) VerifyEnd(ctx context.Context, e introspection.VerifyEvent) {
	v := o.attrs.verdict(e)
	v.n.Add(1)
	if o.tracer == nil {
		return
	}
	if span, ok := spanOf(ctx, verifySpan); ok {
		span.SetAttributes(v.kvs...)
		if e.Outcome == introspection.OutcomeFailed {
			span.SetStatus(codes.Error, v.kvs[1].Value.AsString())
		}
		span.End()
	}
}

// CacheLookup counts the lookup and sets the span's cache result.
func (o *Observer) CacheLookup(ctx context.Context, r introspection.CacheResult) {
	l := o.attrs.lookup(r)
	l.n.Add(1)
	if o.tracer == nil {
		return
	}
	if span, ok := spanOf(ctx, verifySpan); ok {
		span.SetAttributes(l.kvs...)
	}
}

// CollapsedWaiter counts the waiter and marks the span.
func (o *Observer) CollapsedWaiter(ctx context.Context) {
	o.collapsed.Add(ctx, 1)
	if span, ok := spanOf(ctx, verifySpan); ok {
		span.SetAttributes(keyCollapsed.Bool(collapsedPresent))
	}
}

// UpstreamStart starts the HTTP client span of the introspection request,
// as OpenTelemetry's HTTP semantic conventions describe it: named after
// the method, with the method, the server's address and port, and the
// URL, which has no query.
func (o *Observer) UpstreamStart(ctx context.Context, r introspection.UpstreamRequest) context.Context {
	if !o.tracing(ctx) {
		return ctx
	}
	return o.start(ctx, upstreamSpan, r.Method, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(requestAttributes(r)...))
}

// requestAttributes returns the semantic conventions' attributes of the
// request r: http.request.method, server.address, server.port and
// url.full, which is r.URL less any query, fragment or user information.
func requestAttributes(r introspection.UpstreamRequest) []attribute.KeyValue {
	kvs := []attribute.KeyValue{semconv.HTTPRequestMethodKey.String(r.Method)}
	u, err := url.Parse(r.URL)
	if err != nil {
		return kvs
	}
	u.User, u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = nil, "", false, "", ""
	port, _ := strconv.Atoi(u.Port())
	if port == 0 {
		port = map[string]int{"http": 80, "https": 443}[u.Scheme]
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); ip != nil {
		host = ip.String()
	}
	return append(kvs, semconv.ServerAddress(host), semconv.ServerPort(port), semconv.URLFull(u.String()))
}

// UpstreamEnd records the request's duration and ends its span.
func (o *Observer) UpstreamEnd(ctx context.Context, e introspection.UpstreamEvent) {
	u := o.attrs.upstream(e)
	o.upstream.Record(ctx, e.Duration.Seconds(), u.record...)
	if span, ok := spanOf(ctx, upstreamSpan); ok {
		if e.StatusCode >= 100 && e.StatusCode <= 999 { // what HTTP allows: three digits
			span.SetAttributes(semconv.HTTPResponseStatusCode(e.StatusCode))
		}
		if e.Failure != "" {
			span.SetAttributes(u.errorType)
			span.SetStatus(codes.Error, u.errorType.Value.AsString())
		}
		span.End()
	}
}

// CacheCallStart starts the span of a call of a caller's Cache.
func (o *Observer) CacheCallStart(ctx context.Context, op introspection.CacheOperation) context.Context {
	c := o.attrs.cacheOp(op)
	return o.start(ctx, cacheCallSpan, spanCacheCall+c.name, trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(c.kv))
}

// CacheCallEnd ends the span of the call.
func (o *Observer) CacheCallEnd(ctx context.Context, e introspection.CacheCallEvent) {
	if span, ok := spanOf(ctx, cacheCallSpan); ok {
		if e.Err != nil {
			span.SetStatus(codes.Error, "cache call failed")
		}
		span.End()
	}
}

// CacheError counts the error and adds an event to the verification's
// span.
func (o *Observer) CacheError(ctx context.Context, op introspection.CacheOperation) {
	c := o.attrs.cacheOp(op)
	o.cacheErrors.Add(ctx, 1, c.add...)
	if span, ok := spanOf(ctx, verifySpan); ok {
		span.AddEvent(eventCacheError, trace.WithAttributes(c.kv))
	}
}

// BreakerChange counts the transition and adds an event to the span of
// the verification whose request caused it.
func (o *Observer) BreakerChange(ctx context.Context, e introspection.BreakerEvent) {
	to := o.attrs.breakerState(e.To)
	o.transitions.Add(ctx, 1, o.attrs.transition[to])
	if span, ok := spanOf(ctx, verifySpan); ok {
		span.AddEvent(eventBreaker, trace.WithAttributes(keyBreakerState.String(string(to)),
			keyBreakerFrom.String(string(o.attrs.breakerState(e.From)))))
	}
}

// MetadataFetch counts the fetch of the issuer's metadata and records its
// span, which started Duration ago and ends now: a child of the span in
// ctx, that of the verification or the call that started the fetch, or
// for a refresh, which may outlive the verification that started it, the
// root of a trace of its own linked to that span.
func (o *Observer) MetadataFetch(ctx context.Context, e introspection.MetadataEvent) {
	m := o.attrs.metadata(e.Failure)
	o.metadata.Add(ctx, 1, m.add...)
	if o.tracer == nil || !e.Refresh && !o.tracing(ctx) {
		return
	}
	end := time.Now()
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindInternal), trace.WithTimestamp(end.Add(-e.Duration))}
	if e.Refresh {
		opts = append(opts, trace.WithNewRoot())
		if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
			opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc}))
		}
	}
	_, span := o.tracer.Start(ctx, spanMetadata, opts...)
	if e.Failure != "" {
		span.SetAttributes(m.errorType)
		span.SetStatus(codes.Error, m.errorType.Value.AsString())
	}
	span.End(trace.WithTimestamp(end))
}
