package otel

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpauth/introspection"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// verification is the context a verification goes on with while it may
// be traced: the caller's, and what its span introspection.verify needs.
//
// The span starts, with the time the verification started, once the
// verification needs it: when it does work that has a span of its own (a
// call of a caller's Cache, the introspection request, a fetch of the
// metadata) or an event (a breaker transition, a cache error), or as it
// ends. A verification answered from memory (a hit or a negative hit of
// the built-in cache or the local tier) that did none of that ends
// without a span, unless Options.CacheHitSpans: its outcome and cache
// result are in the metrics. So a hit costs no span, which would cost it
// more than the hit itself.
//
// With Options.CacheHitSpans the span starts with the verification, and
// the embedded context holds it.
type verification struct {
	context.Context
	o      *Observer
	start  time.Duration               // when it started, on the monotonic clock: since o.epoch
	lookup atomic.Pointer[lookupAttrs] // the last lookup's result

	mu        sync.Mutex // guards the rest: the request's goroutine starts the span too
	span      trace.Span // nil until started
	eager     bool       // started at VerifyStart, and held by the embedded context
	collapsed bool
	ended     bool
}

// Value returns the verification itself for its Observer's key.
func (v *verification) Value(key any) any {
	if key == v.o.verifyKey {
		return v
	}
	return v.Context.Value(key)
}

// verificationOf returns the verification of this Observer that ctx is
// the context of, or holds, or nil.
func (o *Observer) verificationOf(ctx context.Context) *verification {
	if v, ok := ctx.(*verification); ok && v.o == o {
		return v
	}
	v, _ := ctx.Value(o.verifyKey).(*verification)
	return v
}

// ownVerification returns the verification ctx is the context of: the
// one VerifyStart returned, which the verification's own events get.
// Unlike verificationOf it never finds another verification that ctx
// holds, that of an outer call of Verify whose request this one runs in.
func (o *Observer) ownVerification(ctx context.Context) *verification {
	if v, ok := ctx.(*verification); ok && v.o == o {
		return v
	}
	return nil
}

// VerifyStart notes the time the verification starts, for its span
// introspection.verify, when it may be traced; with
// Options.CacheHitSpans it starts the span.
func (o *Observer) VerifyStart(ctx context.Context) context.Context {
	if !o.tracing(ctx) {
		return ctx
	}
	if !o.hitSpans {
		// The monotonic clock alone costs a hit half what time.Now does;
		// the span's start time is worked out from it if one starts.
		return &verification{Context: ctx, o: o, start: time.Since(o.epoch)}
	}
	ctx, span := o.tracer.Start(ctx, spanVerify, verifyStart...)
	if !span.IsRecording() {
		return ctx
	}
	return &verification{Context: ctx, o: o, span: span, eager: true}
}

var verifyStart = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindInternal)}

// spanLocked returns the verification's span, started now if it was not,
// or nil when the verification ended without one.
func (v *verification) spanLocked() trace.Span {
	if v.span == nil && !v.ended {
		now := time.Now()
		start := now.Add(v.start - now.Sub(v.o.epoch))
		_, v.span = v.o.tracer.Start(v.Context, spanVerify, trace.WithSpanKind(trace.SpanKindInternal),
			trace.WithTimestamp(start))
	}
	return v.span
}

// parent returns the context in which a span of the verification's work
// starts: ctx holding the verification's span, started now if it was
// not. ctx is returned as it was when it holds no verification of this
// Observer, or holds a span of its own below it.
func (o *Observer) parent(ctx context.Context) context.Context {
	v := o.verificationOf(ctx)
	if v == nil || v.eager {
		return ctx // an eager verification's context holds its span
	}
	if trace.SpanFromContext(ctx) != trace.SpanFromContext(v.Context) {
		return ctx // a span started in the verification's work is the parent
	}
	v.mu.Lock()
	span := v.spanLocked()
	v.mu.Unlock()
	if span == nil {
		return ctx
	}
	return trace.ContextWithSpan(ctx, span)
}

// verifySpan returns the span of the verification of ctx, started now if
// it was not, for an event; false when there is none that records.
func (o *Observer) verifySpan(ctx context.Context) (trace.Span, bool) {
	v := o.verificationOf(ctx)
	if v == nil {
		return nil, false
	}
	v.mu.Lock()
	span := v.spanLocked()
	v.mu.Unlock()
	return span, span != nil && span.IsRecording()
}

// VerifyEnd counts the verdict and ends the span, which it starts first
// when the verification needs one and has none yet.
func (o *Observer) VerifyEnd(ctx context.Context, e introspection.VerifyEvent) {
	va := o.m.attrs.verdict(e)
	va.n.Add(1)
	v := o.ownVerification(ctx)
	if v == nil {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.ended {
		return
	}
	if v.span == nil && v.fromMemory() {
		v.ended = true
		return
	}
	span := v.spanLocked()
	v.ended = true
	if l := v.lookup.Load(); l != nil {
		span.SetAttributes(l.kvs...)
	}
	if v.collapsed {
		span.SetAttributes(keyCollapsed.Bool(collapsedPresent))
	}
	span.SetAttributes(va.kvs...)
	if e.Outcome == introspection.OutcomeFailed {
		span.SetStatus(codes.Error, va.kvs[1].Value.AsString())
	}
	span.End()
}

// fromMemory reports whether the verification was answered by a lookup
// in memory alone: a hit or a negative hit that waited for no request.
func (v *verification) fromMemory() bool {
	l := v.lookup.Load()
	return l != nil && (l.result == introspection.CacheHit || l.result == introspection.CacheNegative) && !v.collapsed
}

// CacheLookup counts the lookup and keeps its result for the span.
func (o *Observer) CacheLookup(ctx context.Context, r introspection.CacheResult) {
	l := o.m.attrs.lookup(r)
	l.n.Add(1)
	if v := o.ownVerification(ctx); v != nil {
		v.lookup.Store(l)
	}
}

// CollapsedWaiter counts the waiter and marks the span.
func (o *Observer) CollapsedWaiter(ctx context.Context) {
	o.m.collapsed.Add(ctx, 1)
	if v := o.ownVerification(ctx); v != nil {
		v.mu.Lock()
		v.collapsed = true
		v.mu.Unlock()
	}
}
