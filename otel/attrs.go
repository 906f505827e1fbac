package otel

import (
	"sync/atomic"

	"github.com/mcpauth/introspection"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// The values each attribute may take. An event with a value not listed
// here (from a later version of the verifier) is recorded with "other",
// so that the attribute sets stay these.
var (
	// reasons lists the reasons of each outcome.
	reasons = map[introspection.Outcome][]string{
		introspection.OutcomeAccepted: {"none"},
		introspection.OutcomeRejected: {"malformed_token", "inactive", "expired", "not_yet_valid", "issuer_mismatch",
			"audience_mismatch", "not_access_token", "proof_required", "proof_mismatch", "token_not_bound",
			"invalid_dpop_proof", "use_dpop_nonce", "proof_replayed", "invalid_token"},
		introspection.OutcomeInsufficientScope: {"insufficient_scope"},
		introspection.OutcomeFailed:            failureKinds,
		introspection.OutcomeCanceled:          {"canceled", "deadline_exceeded"},
	}
	failureKinds = []string{
		string(introspection.FailureTransport), string(introspection.FailureTimeout),
		string(introspection.FailureStatus), string(introspection.FailureRedirect),
		string(introspection.FailureContentType), string(introspection.FailureTooLarge),
		string(introspection.FailureMalformed), string(introspection.FailurePanic),
		string(introspection.FailureReplayStore), string(introspection.FailureUnavailable),
		string(introspection.FailureDiscovery),
	}
	cacheResults = []introspection.CacheResult{
		introspection.CacheHit, introspection.CacheNegative, introspection.CacheMiss, introspection.CacheStale,
	}
	statusClasses  = []string{"1xx", "2xx", "3xx", "4xx", "5xx", noStatusClass}
	cacheOps       = []introspection.CacheOperation{introspection.CacheGet, introspection.CacheSet, introspection.CacheDelete, introspection.CacheInvalidate, introspection.CacheDecode}
	breakerStates  = []introspection.BreakerState{introspection.BreakerClosed, introspection.BreakerOpen, introspection.BreakerHalfOpen}
	outcomeOrOther = func(o introspection.Outcome) introspection.Outcome {
		if _, ok := reasons[o]; ok {
			return o
		}
		return otherValue
	}
)

// attrSets holds, made once, the options and attributes of every value
// the attributes may take, so that recording a measurement allocates
// nothing. Its maps are only read after newAttrSets.
type attrSets struct {
	verdicts   map[verdictKey]*verdictAttrs
	lookups    map[introspection.CacheResult]*lookupAttrs
	upstreams  map[upstreamKey]*upstreamAttrs
	cacheOps   map[introspection.CacheOperation]*cacheOpAttrs
	breaker    map[introspection.BreakerState]metric.ObserveOption
	transition map[introspection.BreakerState]metric.AddOption
	metadatas  map[introspection.FailureKind]*metadataAttrs

	// The attributes of a cache hit's events, found without a map.
	accepted *verdictAttrs
	hit      *lookupAttrs
}

type verdictKey struct {
	outcome introspection.Outcome
	reason  string
}

// verdictAttrs and lookupAttrs count their events themselves, for the
// observable counters: an atomic add costs a verification far less than
// a measurement of a synchronous instrument.
type verdictAttrs struct {
	n       paddedCount
	observe []metric.ObserveOption
	kvs     []attribute.KeyValue // introspection.outcome, introspection.reason
}

type lookupAttrs struct {
	n       paddedCount
	observe []metric.ObserveOption
	kvs     []attribute.KeyValue
}

// paddedCount keeps a hot count on its own cache line.
type paddedCount struct {
	atomic.Int64
	_ [56]byte
}

type upstreamKey struct {
	class   string
	failure introspection.FailureKind
}

type upstreamAttrs struct {
	record    []metric.RecordOption
	errorType attribute.KeyValue
}

type metadataAttrs struct {
	add       []metric.AddOption
	errorType attribute.KeyValue
}

type cacheOpAttrs struct {
	name string
	kv   attribute.KeyValue
	add  []metric.AddOption
}

func newAttrSets() *attrSets {
	a := &attrSets{
		verdicts:   map[verdictKey]*verdictAttrs{},
		lookups:    map[introspection.CacheResult]*lookupAttrs{},
		upstreams:  map[upstreamKey]*upstreamAttrs{},
		cacheOps:   map[introspection.CacheOperation]*cacheOpAttrs{},
		breaker:    map[introspection.BreakerState]metric.ObserveOption{},
		transition: map[introspection.BreakerState]metric.AddOption{},
		metadatas:  map[introspection.FailureKind]*metadataAttrs{},
	}
	addVerdict := func(o introspection.Outcome, r string) {
		kvs := []attribute.KeyValue{keyOutcome.String(string(o)), keyReason.String(r)}
		a.verdicts[verdictKey{o, r}] = &verdictAttrs{observe: []metric.ObserveOption{metric.WithAttributes(kvs...)}, kvs: kvs}
	}
	for o, rs := range reasons {
		for _, r := range rs {
			addVerdict(o, r)
		}
		addVerdict(o, otherValue)
	}
	addVerdict(otherValue, otherValue)
	a.accepted = a.verdicts[verdictKey{introspection.OutcomeAccepted, "none"}]
	for _, r := range append(cacheResults, otherValue) {
		kvs := []attribute.KeyValue{keyCacheResult.String(string(r))}
		a.lookups[r] = &lookupAttrs{observe: []metric.ObserveOption{metric.WithAttributes(kvs...)}, kvs: kvs}
	}
	a.hit = a.lookups[introspection.CacheHit]
	for _, c := range append(statusClasses, otherValue) {
		for _, f := range append([]string{"", otherValue}, failureKinds...) {
			kvs := []attribute.KeyValue{keyStatusClass.String(c)}
			if f != "" {
				kvs = append(kvs, semconv.ErrorTypeKey.String(f))
			}
			a.upstreams[upstreamKey{c, introspection.FailureKind(f)}] = &upstreamAttrs{
				record:    []metric.RecordOption{metric.WithAttributes(kvs...)},
				errorType: semconv.ErrorTypeKey.String(f),
			}
		}
	}
	for _, f := range append([]string{"", otherValue}, failureKinds...) {
		m := &metadataAttrs{errorType: semconv.ErrorTypeKey.String(f)}
		if f != "" {
			m.add = []metric.AddOption{metric.WithAttributes(m.errorType)}
		}
		a.metadatas[introspection.FailureKind(f)] = m
	}
	for _, op := range append(cacheOps, otherValue) {
		kv := keyCacheOp.String(string(op))
		a.cacheOps[op] = &cacheOpAttrs{name: string(op), kv: kv, add: []metric.AddOption{metric.WithAttributes(kv)}}
	}
	for _, s := range append(breakerStates, otherValue) {
		kv := keyBreakerState.String(string(s))
		a.breaker[s] = metric.WithAttributes(kv)
		a.transition[s] = metric.WithAttributes(kv)
	}
	return a
}

// verdict returns the attributes of the verdict e.
func (a *attrSets) verdict(e introspection.VerifyEvent) *verdictAttrs {
	if e.Outcome == introspection.OutcomeAccepted && e.Reason == "none" {
		return a.accepted
	}
	if v, ok := a.verdicts[verdictKey{e.Outcome, e.Reason}]; ok {
		return v
	}
	return a.verdicts[verdictKey{outcomeOrOther(e.Outcome), otherValue}]
}

// lookup returns the attributes of the cache result r.
func (a *attrSets) lookup(r introspection.CacheResult) *lookupAttrs {
	if r == introspection.CacheHit {
		return a.hit
	}
	if l, ok := a.lookups[r]; ok {
		return l
	}
	return a.lookups[otherValue]
}

// upstream returns the attributes of the end of a request.
func (a *attrSets) upstream(e introspection.UpstreamEvent) *upstreamAttrs {
	if u, ok := a.upstreams[upstreamKey{statusClass(e.StatusCode), e.Failure}]; ok {
		return u
	}
	return a.upstreams[upstreamKey{statusClass(e.StatusCode), otherValue}]
}

// metadata returns the attributes of the end of a fetch of the metadata
// that failed with f, or succeeded ("").
func (a *attrSets) metadata(f introspection.FailureKind) *metadataAttrs {
	if m, ok := a.metadatas[f]; ok {
		return m
	}
	return a.metadatas[otherValue]
}

// statusClass returns the class of an HTTP status code: "2xx" for 200 to
// 299, and so on, "none" for no answer, "other" outside 100 to 599.
func statusClass(code int) string {
	switch {
	case code == 0:
		return noStatusClass
	case code >= 100 && code <= 599:
		return statusClasses[code/100-1]
	}
	return otherValue
}

// cacheOp returns the attributes of a cache operation.
func (a *attrSets) cacheOp(op introspection.CacheOperation) *cacheOpAttrs {
	if c, ok := a.cacheOps[op]; ok {
		return c
	}
	return a.cacheOps[otherValue]
}

// breakerState returns s, or "other" for a state this module does not
// know.
func (a *attrSets) breakerState(s introspection.BreakerState) introspection.BreakerState {
	if _, ok := a.breaker[s]; ok {
		return s
	}
	return otherValue
}
