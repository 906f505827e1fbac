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
	"fmt"
	"net"
	"net/url"
	"reflect"
	"runtime"
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
	// otel.GetMeterProvider(). The Observers made on one MeterProvider
	// share their metrics: see [New].
	MeterProvider metric.MeterProvider
	// TracerProvider makes the spans. Nil means the global one,
	// otel.GetTracerProvider(): while no provider has been set there
	// (otel.SetTracerProvider), or a no-op one was, no span is started;
	// once one is set, spans go to the first provider set, as with every
	// tracer taken from the global provider before it was set. With a
	// [noop.TracerProvider] no span is started at all, which spares a
	// verification the context that would hold one.
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

	tracer    trace.Tracer // nil when the TracerProvider is a no-op one: no span is started
	anyParent bool         // Options.SamplerIgnoresParent
	// unset is the global TracerProvider as it is before one is set, when
	// the Observer's is the global one: no span is started while
	// otel.GetTracerProvider still returns it. Else nil.
	unset trace.TracerProvider
	m     *meters

	// The keys under which this Observer's Start methods keep their spans
	// in a context: its own, so that another Observer's End methods never
	// find them.
	verifyKey, upstreamKey, cacheCallKey *spanKey
	workKey                              *spanKey // of the workContext itself
}

// meters are the instruments, counts and watched verifiers of every
// Observer made on one MeterProvider. Sharing them keeps one callback per
// provider for the observable instruments, so that the gauges report the
// verifiers that any of those Observers watches, and the counters their
// sum: with a callback each, the SDK would keep one observation per
// attribute set and drop the others.
type meters struct {
	cacheErrors metric.Int64Counter
	collapsed   metric.Int64Counter
	upstream    metric.Float64Histogram
	transitions metric.Int64Counter
	metadata    metric.Int64Counter
	attrs       *attrSets
	reg         metric.Registration // of the callback

	mu      sync.Mutex // guards watched
	watched map[*introspection.Verifier]int

	users int // live Observers that share these; guarded by shared.mu
}

// shared holds the meters of each MeterProvider that live Observers were
// made on. An entry goes, and its callback is unregistered, once the
// garbage collector has found every Observer made on that provider
// unreachable, so that no provider is kept for ever.
var shared = struct {
	mu sync.Mutex // guards byProvider and each entry's users
	// byProvider is keyed by the provider: one whose type is not
	// comparable gets meters of its own for each Observer, not listed.
	byProvider map[metric.MeterProvider]*meters
}{byProvider: map[metric.MeterProvider]*meters{}}

// New returns an Observer that records on the providers of opts.
//
// Every Observer made on one MeterProvider records into the same
// instruments and counts: the counters count the events of them all, and
// the gauges report the verifiers any of them watches, each once. An
// application that makes an Observer per verifier on one provider sees
// each verifier's breaker and cache in the gauges.
func New(opts Options) (*Observer, error) {
	mp, tp := opts.MeterProvider, opts.TracerProvider
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	o := &Observer{verifyKey: &spanKey{"verify"}, upstreamKey: &spanKey{"upstream"}, cacheCallKey: &spanKey{"cache call"},
		workKey: &spanKey{"work"}}
	if tp == nil {
		tp = otel.GetTracerProvider()
		if isUnsetGlobal(tp) {
			o.unset = tp
		}
	}
	if _, off := tp.(noop.TracerProvider); !off {
		o.tracer = tp.Tracer(ScopeName)
	}
	o.anyParent = opts.SamplerIgnoresParent
	m, err := sharedMeters(mp)
	if err != nil {
		return nil, err
	}
	o.m = m
	if m.users > 0 { // listed: released when o is gone
		runtime.AddCleanup(o, releaseMeters, meterRelease{mp, m})
	}
	return o, nil
}

// isUnsetGlobal reports whether tp is the global TracerProvider as
// OpenTelemetry makes it before one is set: it hands spans on to the
// provider set later, and until then starts spans that record nothing.
func isUnsetGlobal(tp trace.TracerProvider) bool {
	t := reflect.TypeOf(tp)
	return t.Kind() == reflect.Pointer && t.Elem().PkgPath() == "go.opentelemetry.io/otel/internal/global"
}

// sharedMeters returns the meters of mp, made on first use, with one more
// user.
func sharedMeters(mp metric.MeterProvider) (*meters, error) {
	if !reflect.TypeOf(mp).Comparable() {
		return newMeters(mp)
	}
	shared.mu.Lock()
	defer shared.mu.Unlock()
	m, ok := shared.byProvider[mp]
	if !ok {
		var err error
		if m, err = newMeters(mp); err != nil {
			return nil, err
		}
		shared.byProvider[mp] = m
	}
	m.users++
	return m, nil
}

// meterRelease names the meters an Observer shares, for its cleanup.
type meterRelease struct {
	mp metric.MeterProvider
	m  *meters
}

// releaseMeters drops a user of r's meters, and the meters with their
// callback when none is left.
func releaseMeters(r meterRelease) {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if r.m.users--; r.m.users > 0 {
		return
	}
	if shared.byProvider[r.mp] == r.m {
		delete(shared.byProvider, r.mp)
	}
	_ = r.m.reg.Unregister()
}

// newMeters makes the instruments on mp and registers the callback of the
// observable ones.
func newMeters(mp metric.MeterProvider) (*meters, error) {
	meter := mp.Meter(ScopeName)
	m := &meters{attrs: newAttrSets(), watched: make(map[*introspection.Verifier]int)}
	var errs [10]error
	var verifications, lookups metric.Int64ObservableCounter
	verifications, errs[0] = meter.Int64ObservableCounter(metricVerifications, metric.WithUnit("{verification}"),
		metric.WithDescription("Verifications of tokens by their outcome and its reason."))
	lookups, errs[1] = meter.Int64ObservableCounter(metricCacheLookups, metric.WithUnit("{lookup}"),
		metric.WithDescription("Lookups of tokens in the cache by what they found."))
	m.cacheErrors, errs[2] = meter.Int64Counter(metricCacheErrors, metric.WithUnit("{error}"),
		metric.WithDescription("Failed calls of a caller's cache, and stored values that are not answers."))
	m.collapsed, errs[3] = meter.Int64Counter(metricCollapsed, metric.WithUnit("{verification}"),
		metric.WithDescription("Verifications that got the answer of an introspection request another had started."))
	m.upstream, errs[4] = meter.Float64Histogram(metricUpstream, metric.WithUnit("s"),
		metric.WithDescription("Duration of introspection requests to the authorization server."),
		metric.WithExplicitBucketBoundaries(UpstreamBuckets...))
	m.transitions, errs[5] = meter.Int64Counter(metricTransitions, metric.WithUnit("{transition}"),
		metric.WithDescription("Transitions of the circuit breaker by the state it went to."))
	var entries, states metric.Int64ObservableGauge
	entries, errs[6] = meter.Int64ObservableGauge(metricCacheEntries, metric.WithUnit("{entry}"),
		metric.WithDescription("Entries in the built-in caches of the watched verifiers."))
	states, errs[7] = meter.Int64ObservableGauge(metricBreakerState, metric.WithUnit("{breaker}"),
		metric.WithDescription("Watched verifiers whose circuit breaker is in each state."))
	m.metadata, errs[9] = meter.Int64Counter(metricMetadata, metric.WithUnit("{fetch}"),
		metric.WithDescription("Fetches of the issuer's metadata by why they failed."))
	m.reg, errs[8] = meter.RegisterCallback(m.observe(verifications, lookups, entries, states),
		verifications, lookups, entries, states)
	for _, err := range errs {
		if err != nil {
			if m.reg != nil {
				_ = m.reg.Unregister()
			}
			return nil, err
		}
	}
	return m, nil
}

// Watch adds v to the verifiers whose cache size and breaker state the
// gauges report, until stop is called. A verifier watched twice, by this
// Observer or another made on the same MeterProvider, is reported once
// and stays watched until both stops.
func (o *Observer) Watch(v *introspection.Verifier) (stop func()) {
	m := o.m
	m.mu.Lock()
	m.watched[v]++
	m.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			m.mu.Lock()
			defer m.mu.Unlock()
			if m.watched[v]--; m.watched[v] <= 0 {
				delete(m.watched, v)
			}
		})
	}
}

// observe returns the callback that reports the observable counters,
// each count that is not zero, and the gauges.
func (m *meters) observe(verifications, lookups metric.Int64ObservableCounter, entries, states metric.Int64ObservableGauge) metric.Callback {
	return func(_ context.Context, obs metric.Observer) error {
		for _, v := range m.attrs.verdicts {
			if n := v.n.Load(); n > 0 {
				obs.ObserveInt64(verifications, n, v.observe...)
			}
		}
		for _, l := range m.attrs.lookups {
			if n := l.n.Load(); n > 0 {
				obs.ObserveInt64(lookups, n, l.observe...)
			}
		}
		m.mu.Lock()
		vs := make([]*introspection.Verifier, 0, len(m.watched))
		for v := range m.watched {
			vs = append(vs, v)
		}
		m.mu.Unlock()
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
			obs.ObserveInt64(states, count[s], m.attrs.breaker[s])
		}
		return nil
	}
}

// spanKey is a key under which a Start method of one Observer keeps the
// span it started when that span records, so that the End method ends
// that span and no other: not the caller's, when the Start method did not
// run, nor another Observer's, when verifications of verifiers with
// different Observers nest. Each Observer has its own keys.
type spanKey struct{ name string }

// startWork starts the span of a verification's work, named name, of
// kind, with the attributes attrs returns, when one may be sampled there,
// and returns the work's context: a workContext, also when it started no
// span, so that an End method of work nested in it finds nothing of it.
func (o *Observer) startWork(ctx context.Context, key *spanKey, name string, kind trace.SpanKind,
	attrs func() []attribute.KeyValue) context.Context {
	if !o.spansOn() {
		return ctx // no span of this Observer's anywhere
	}
	w := &workContext{o: o, key: key}
	w.verify, _ = spanOf(ctx, o.verifyKey)
	if o.tracing(ctx) {
		ctx, w.span = o.tracer.Start(ctx, name, trace.WithSpanKind(kind), trace.WithAttributes(attrs()...))
		if !w.span.IsRecording() {
			w.span = nil
		}
	}
	w.Context = ctx
	return w
}

// workContext is the context of the work of a verification that has a
// span of its own (the introspection request, a call of a caller's
// Cache): it holds that span under its key, when it records, and hides
// the verification's span and the span of any work it is nested in, so
// that a verification run inside that work (a verifier called from the
// transport of another's request), or work of its own, when it starts no
// span, never ends or changes the outer ones.
type workContext struct {
	context.Context
	o      *Observer
	key    *spanKey
	span   trace.Span // nil when it does not record
	verify trace.Span // the verification's, when it records: for a cache error of a call whose span does not
}

// Value returns the work's span for its key, nothing for the key of the
// verification's span, the work itself for the Observer's workKey, and
// else what the context it was derived from holds.
func (c *workContext) Value(key any) any {
	switch key {
	case c.key:
		if c.span == nil {
			return nil
		}
		return c.span
	case c.o.verifyKey:
		return nil
	case c.o.workKey:
		return c
	}
	return c.Context.Value(key)
}

// String names the context it was derived from and the work, as the
// context package names its contexts.
func (c *workContext) String() string {
	return contextName(c.Context) + ".WithIntrospection(" + c.key.name + ")"
}

// contextName is how the context package names ctx in its contexts'
// String: its String, or its type.
func contextName(ctx context.Context) string {
	if s, ok := ctx.(fmt.Stringer); ok {
		return s.String()
	}
	return reflect.TypeOf(ctx).String()
}

// spansOn reports whether the Observer starts spans at all: it has a
// tracer and, when its TracerProvider is the global one, a provider was
// set there that is not a no-op one. Until then a span would record
// nothing.
func (o *Observer) spansOn() bool {
	if o.tracer == nil {
		return false
	}
	if o.unset == nil {
		return true
	}
	tp := otel.GetTracerProvider()
	if tp == o.unset {
		return false
	}
	_, off := tp.(noop.TracerProvider)
	return !off
}

// tracing reports whether a span started in ctx may be sampled: spans
// are on, and ctx holds no span context that is valid and not sampled,
// unless the sampler ignores the parent (Options.SamplerIgnoresParent).
func (o *Observer) tracing(ctx context.Context) bool {
	if !o.spansOn() {
		return false
	}
	if o.anyParent {
		return true
	}
	sc := trace.SpanContextFromContext(ctx)
	return !sc.IsValid() || sc.IsSampled()
}

// spanOf returns the recording span a Start method kept under key in ctx:
// under verifyKey, that of the verification ctx is the context of, never
// one whose work ctx runs in, which a workContext hides.
func spanOf(ctx context.Context, key *spanKey) (trace.Span, bool) {
	s, ok := ctx.Value(key).(trace.Span)
	return s, ok
}

var verifyStart = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindInternal)}

// VerifyStart starts the span introspection.verify. The verifier calls it
// only for a verification that memory did not answer: see
// VerifyFromMemory.
func (o *Observer) VerifyStart(ctx context.Context) context.Context {
	if !o.spansOn() {
		return ctx
	}
	if o.tracing(ctx) {
		c, span := o.tracer.Start(ctx, spanVerify, verifyStart...)
		if span.IsRecording() {
			return context.WithValue(c, o.verifyKey, span)
		}
		ctx = c
	}
	if _, outer := spanOf(ctx, o.verifyKey); outer {
		// Another verification's, this one runs in: hidden, so that this
		// one's events never reach it.
		return context.WithValue(ctx, o.verifyKey, nil)
	}
	return ctx
}

// VerifyEnd counts the verdict and ends the span.
func (o *Observer) VerifyEnd(ctx context.Context, e introspection.VerifyEvent) {
	v := o.m.attrs.verdict(e)
	v.n.Add(1)
	if o.tracer == nil {
		return
	}
	if span, ok := spanOf(ctx, o.verifyKey); ok {
		span.SetAttributes(v.kvs...)
		if e.Outcome == introspection.OutcomeFailed {
			span.SetStatus(codes.Error, v.kvs[1].Value.AsString())
		}
		span.End()
	}
}

// VerifyFromMemory counts the verdict and the lookup of a verification
// that the built-in cache or the local tier answered, which has no span:
// a span would cost such a verification more than the lookup does. One
// that failed (a dependency panicked in it, or a DPoP proof's replay store
// failed) has a span all the same, ending as it starts, with its verdict,
// so that the failure shows in its trace.
func (o *Observer) VerifyFromMemory(ctx context.Context, r introspection.CacheResult, e introspection.VerifyEvent) {
	l := o.m.attrs.lookup(r)
	l.n.Add(1)
	v := o.m.attrs.verdict(e)
	v.n.Add(1)
	if e.Outcome != introspection.OutcomeFailed || !o.tracing(ctx) {
		return
	}
	_, span := o.tracer.Start(ctx, spanVerify, verifyStart[0], trace.WithAttributes(l.kvs...), trace.WithAttributes(v.kvs...))
	span.SetStatus(codes.Error, v.kvs[1].Value.AsString())
	span.End()
}

// CacheLookup counts the lookup and sets the span's cache result.
func (o *Observer) CacheLookup(ctx context.Context, r introspection.CacheResult) {
	l := o.m.attrs.lookup(r)
	l.n.Add(1)
	if o.tracer == nil {
		return
	}
	if span, ok := spanOf(ctx, o.verifyKey); ok {
		span.SetAttributes(l.kvs...)
	}
}

// CollapsedWaiter counts the waiter and marks the span.
func (o *Observer) CollapsedWaiter(ctx context.Context) {
	o.m.collapsed.Add(ctx, 1)
	if span, ok := spanOf(ctx, o.verifyKey); ok {
		span.SetAttributes(keyCollapsed.Bool(collapsedPresent))
	}
}

// UpstreamStart starts the HTTP client span of the introspection request,
// as OpenTelemetry's HTTP semantic conventions describe it: named after
// the method, with the method, the server's address and port, and the
// URL, which has no query.
func (o *Observer) UpstreamStart(ctx context.Context, r introspection.UpstreamRequest) context.Context {
	return o.startWork(ctx, o.upstreamKey, r.Method, trace.SpanKindClient,
		func() []attribute.KeyValue { return requestAttributes(r) })
}

// maxServerAddress is the longest host, in bytes, that the request's span
// records: that of a DNS name (RFC 1035 §2.3.4). A longer host names no
// server the request can reach; the span then has neither server.address,
// server.port nor url.full.
const maxServerAddress = 253

// discoveredPath is the path of url.full for an endpoint that the
// issuer's metadata named: the path it names is the server's text, which
// the semantic conventions let an instrumentation scrub from url.full.
const discoveredPath = "/{introspection}"

// requestAttributes returns the semantic conventions' attributes of the
// request r: http.request.method, server.address, server.port and
// url.full, which is r.URL less any query, fragment or user information,
// and for a discovered endpoint its scheme, host and port followed by
// discoveredPath.
func requestAttributes(r introspection.UpstreamRequest) []attribute.KeyValue {
	kvs := []attribute.KeyValue{semconv.HTTPRequestMethodKey.String(r.Method)}
	u, err := url.Parse(r.URL)
	if err != nil {
		return kvs
	}
	u.User, u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = nil, "", false, "", ""
	host := u.Hostname()
	if len(host) > maxServerAddress {
		return kvs
	}
	port, _ := strconv.Atoi(u.Port())
	if port == 0 {
		port = map[string]int{"http": 80, "https": 443}[u.Scheme]
	}
	if ip := net.ParseIP(host); ip != nil {
		host = ip.String()
	}
	full := u.String()
	if r.Discovered {
		full = u.Scheme + "://" + u.Host + discoveredPath
	}
	return append(kvs, semconv.ServerAddress(host), semconv.ServerPort(port), semconv.URLFull(full))
}

// UpstreamEnd records the request's duration and ends its span.
func (o *Observer) UpstreamEnd(ctx context.Context, e introspection.UpstreamEvent) {
	u := o.m.attrs.upstream(e)
	o.m.upstream.Record(ctx, e.Duration.Seconds(), u.record...)
	if span, ok := spanOf(ctx, o.upstreamKey); ok {
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
	c := o.m.attrs.cacheOp(op)
	return o.startWork(ctx, o.cacheCallKey, spanCacheCall+c.name, trace.SpanKindInternal,
		func() []attribute.KeyValue { return []attribute.KeyValue{c.kv} })
}

// CacheCallEnd ends the span of the call.
func (o *Observer) CacheCallEnd(ctx context.Context, e introspection.CacheCallEvent) {
	if span, ok := spanOf(ctx, o.cacheCallKey); ok {
		if e.Err != nil {
			span.SetStatus(codes.Error, "cache call failed")
		}
		span.End()
	}
}

// CacheError counts the error and adds an event to the span of the
// failed call of a caller's Cache, a child of the verification's span,
// or, for an error without a call (a stored value that is not an
// answer), to the verification's span. The call's span is open then,
// also for the store of an answer, which may end after the verification.
func (o *Observer) CacheError(ctx context.Context, op introspection.CacheOperation) {
	c := o.m.attrs.cacheOp(op)
	o.m.cacheErrors.Add(ctx, 1, c.add...)
	span, ok := spanOf(ctx, o.cacheCallKey)
	if !ok {
		if w, call := ctx.Value(o.workKey).(*workContext); call && w.key == o.cacheCallKey {
			span, ok = w.verify, w.verify != nil // the call's span does not record: the verification's
		} else {
			span, ok = spanOf(ctx, o.verifyKey)
		}
	}
	if ok {
		span.AddEvent(eventCacheError, trace.WithAttributes(c.kv))
	}
}

// BreakerChange counts the transition and adds an event to the span of
// the verification whose request caused it.
func (o *Observer) BreakerChange(ctx context.Context, e introspection.BreakerEvent) {
	to := o.m.attrs.breakerState(e.To)
	o.m.transitions.Add(ctx, 1, o.m.attrs.transition[to])
	if span, ok := spanOf(ctx, o.verifyKey); ok {
		span.AddEvent(eventBreaker, trace.WithAttributes(keyBreakerState.String(string(to)),
			keyBreakerFrom.String(string(o.m.attrs.breakerState(e.From)))))
	}
}

// MetadataFetch counts the fetch of the issuer's metadata and records its
// span, which started Duration ago and ends now: a child of the span in
// ctx, that of the verification or the call that started the fetch, or
// for a refresh, which may outlive the verification that started it, the
// root of a trace of its own linked to that span.
func (o *Observer) MetadataFetch(ctx context.Context, e introspection.MetadataEvent) {
	m := o.m.attrs.metadata(e.Failure)
	o.m.metadata.Add(ctx, 1, m.add...)
	if !o.spansOn() || !e.Refresh && !o.tracing(ctx) {
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

// The verifier tells an Observer of a verification that memory answered
// by one call.
var _ introspection.MemoryObserver = (*Observer)(nil)
