package introspection

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// BreakerState is the state of a [Verifier]'s circuit breaker, which
// stops sending introspection requests to an authorization server that
// keeps failing.
//
// The breaker counts the failures of the server, one per introspection
// request however many callers share it: no answer (FailureTransport,
// FailureTimeout), a 5xx or 429 status, and an answer that is not a usable
// one (a success status other than 200, such as 204, FailureRedirect,
// FailureContentType, FailureTooLarge, FailureMalformed). Any other answer
// shows the server is up and starts the count again: a usable answer,
// active or not, and a 4xx status other than 429, which is about the
// request (invalid_client is a configuration error, logged as every failed
// request is). A token never fails the server, so invalid tokens never
// open the breaker. Neither do panics, nor callers whose context ends: the
// request runs on without them.
//
// After Settings.BreakerThreshold consecutive failures the breaker opens
// for an interval: BreakerMinBackoff, doubled after each failed probe up
// to BreakerMaxBackoff, jittered by up to 20% either way within those two
// bounds, or the Retry-After of the failure that opened it when that is
// longer (at most one hour). While it is open, [Verifier.Verify] fails at
// once with an [*IntrospectionError] of kind [FailureUnavailable] whose
// RetryAfter is the time left, and sends nothing. Once the interval has
// passed, the first call that needs the server sends its request as the
// one probe; other calls keep failing at once until it ends. Its success
// closes the breaker; its failure opens it again for the next interval.
type BreakerState string

const (
	// BreakerClosed sends every request to the authorization server.
	BreakerClosed BreakerState = "closed"
	// BreakerOpen sends none until its interval has passed.
	BreakerOpen BreakerState = "open"
	// BreakerHalfOpen sends one probe request at a time.
	BreakerHalfOpen BreakerState = "half_open"
)

// Defaults applied by [NewVerifier] to the zero-valued breaker settings.
const (
	DefaultBreakerThreshold  = 5
	DefaultBreakerMinBackoff = time.Second
	DefaultBreakerMaxBackoff = time.Minute
)

// breakerJitter is the share by which an interval varies either way: 1/5,
// so ±20%.
const breakerJitter = 5

// errBreakerOpen is the cause of a FailureUnavailable.
var errBreakerOpen = errors.New("the authorization server keeps failing: circuit breaker open, no request sent")

// breakerStates are the states, by the value of breaker.state.
var breakerStates = [...]BreakerState{BreakerClosed, BreakerOpen, BreakerHalfOpen}

const (
	stateClosed int32 = iota
	stateOpen
	stateHalfOpen
)

// breaker is a verifier's circuit breaker. Its clock is Settings.Now.
type breaker struct {
	threshold int
	min, max  time.Duration
	rand      func(n int64) int64 // a number in [0, n)

	state atomic.Int32 // an index of breakerStates; written under mu

	mu       sync.Mutex    // guards the fields below
	streak   int           // consecutive failures since the server last answered
	opens    int           // openings since the breaker last closed
	interval time.Duration // of the current opening
	until    time.Time     // end of the current opening
	since    time.Time     // when it opened first after it was closed
	probe    *attempt      // the probe running while half-open, or nil
	opened   uint64        // transitions to open
}

// attempt is the breaker's leave for one introspection request.
type attempt struct {
	probe bool
}

// closedAttempt is the leave of every request sent while the breaker is
// closed.
var closedAttempt = &attempt{}

// newBreaker returns the breaker of settings s, validated, or nil when s
// turns it off.
func newBreaker(s Settings) *breaker {
	if s.BreakerThreshold < 0 {
		return nil
	}
	return &breaker{threshold: s.BreakerThreshold, min: s.BreakerMinBackoff, max: s.BreakerMaxBackoff, rand: rand.Int64N}
}

// validateBreaker checks the breaker's settings of s and returns s with
// their defaults applied. Negative durations are refused before.
func (s Settings) validateBreaker() (Settings, error) {
	if s.BreakerThreshold == 0 {
		s.BreakerThreshold = DefaultBreakerThreshold
	}
	if s.BreakerMinBackoff == 0 {
		s.BreakerMinBackoff = DefaultBreakerMinBackoff
	}
	if s.BreakerMaxBackoff == 0 {
		s.BreakerMaxBackoff = DefaultBreakerMaxBackoff
	}
	if s.BreakerMaxBackoff > maxRetryAfter {
		got := fmt.Sprintf(" must be at most %v, got %v", maxRetryAfter, s.BreakerMaxBackoff)
		return s, &settingError{"introspection: BreakerMaxBackoff" + got,
			func(p string) string { return "introspection: " + p + "BREAKER_MAX_BACKOFF" + got }}
	}
	if s.BreakerMinBackoff > s.BreakerMaxBackoff {
		minB, maxB := fmt.Sprintf(" (%v)", s.BreakerMinBackoff), fmt.Sprintf(" (%v)", s.BreakerMaxBackoff)
		const longer = " must not be longer than "
		return s, &settingError{"introspection: BreakerMinBackoff" + minB + longer + "BreakerMaxBackoff" + maxB,
			func(p string) string {
				return "introspection: " + p + "BREAKER_MIN_BACKOFF" + minB + longer + p + "BREAKER_MAX_BACKOFF" + maxB
			}}
	}
	return s, nil
}

// backoff returns the interval of the breaker's opening after n earlier
// ones since it closed: min doubled n times, up to max, varied by up to
// 1/breakerJitter either way, and never outside [min, max].
func (b *breaker) backoff(n int) time.Duration {
	d := b.min
	for ; n > 0 && d < b.max; n-- {
		d *= 2
	}
	d = min(d, b.max)
	spread := d / breakerJitter
	d += time.Duration(b.rand(int64(2*spread)+1)) - spread
	return min(max(d, b.min), b.max)
}

// admit decides whether the shared request for a token may be sent: it
// returns the breaker's leave, or the FailureUnavailable its callers get.
// It runs once per shared request, on the request's own goroutine.
func (v *Verifier) admit(ctx context.Context) (*attempt, error) {
	b := v.breaker
	if b.state.Load() == stateClosed {
		return closedAttempt, nil
	}
	now := v.now() // before the lock: a panic in it leaves the breaker alone
	b.mu.Lock()
	var att *attempt
	var wait time.Duration
	halfOpened := false
	switch b.state.Load() {
	case stateClosed:
		att = closedAttempt
	case stateOpen:
		wait = b.until.Sub(now)
		if wait > b.interval {
			// Settings.Now went back: never wait longer than the interval.
			b.until, wait = now.Add(b.interval), b.interval
		}
		if wait <= 0 {
			b.state.Store(stateHalfOpen)
			att = &attempt{probe: true}
			b.probe = att
			halfOpened = true
		}
	case stateHalfOpen:
		if b.probe == nil {
			att = &attempt{probe: true}
			b.probe = att
		} else {
			// The probe may end any moment; if it fails, the next one is
			// at least min away.
			wait = b.min
		}
	}
	b.mu.Unlock()
	if att == nil {
		return nil, &IntrospectionError{Kind: FailureUnavailable, RetryAfter: wait, Err: errBreakerOpen}
	}
	if halfOpened {
		v.logAttrs(ctx, slog.LevelInfo, "introspection: circuit breaker half-open: sending a probe")
		v.observeBreaker(ctx, BreakerOpen, BreakerHalfOpen)
	}
	return att, nil
}

// breakerOutcome is what the end of a request tells the breaker.
type breakerOutcome int

const (
	neutral  breakerOutcome = iota // nothing about the server: a panic, no request
	answered                       // the server answered
	failed                         // the server failed
)

// outcomeOf classifies err, the end of an introspection request.
func outcomeOf(err error) breakerOutcome {
	if err == nil {
		return answered
	}
	var ie *IntrospectionError
	if !errors.As(err, &ie) {
		return neutral
	}
	switch ie.Kind {
	case FailureTransport, FailureTimeout, FailureRedirect, FailureContentType, FailureTooLarge, FailureMalformed:
		return failed
	case FailureStatus:
		// A 4xx other than 429 is an answer about the request (the
		// credentials, the token); 5xx, 429 and a success status other
		// than 200 are no answer, as serverCouldNotAnswer reads them too.
		if ie.StatusCode >= 500 || ie.StatusCode == http.StatusTooManyRequests || ie.StatusCode < 400 {
			return failed
		}
		return answered
	}
	return neutral
}

// settle tells the breaker how the request it let through with att ended:
// err is what its callers got. It runs once per request, before they get
// it, so that they see the breaker's new state.
func (v *Verifier) settle(ctx context.Context, att *attempt, err error) {
	if att == nil {
		return
	}
	b := v.breaker
	o := outcomeOf(err)
	var now time.Time
	if o == failed || att.probe && o == answered {
		var ok bool
		if now, ok = v.safeNow(ctx); !ok {
			o = neutral
		}
	}
	var retryAfter time.Duration
	var kind FailureKind
	if ie, ok := err.(*IntrospectionError); ok {
		retryAfter, kind = ie.RetryAfter, ie.Kind
	}

	b.mu.Lock()
	opened, closed := false, false
	switch {
	case att.probe:
		if b.probe != att {
			break
		}
		b.probe = nil
		switch o {
		case answered:
			closed = true
		case failed:
			b.streak++
			opened = true
		}
	case b.state.Load() == stateClosed:
		switch o {
		case answered:
			b.streak = 0
		case failed:
			b.streak++
			opened = b.streak >= b.threshold
		}
	}
	// Otherwise the request was sent before the breaker opened: its end
	// is no news.
	streak, openFor := b.streak, now.Sub(b.since)
	from := breakerStates[b.state.Load()]
	if opened {
		if b.state.Load() == stateClosed {
			b.since = now
		}
		b.interval = max(b.backoff(b.opens), min(retryAfter, maxRetryAfter))
		b.opens++
		b.until = now.Add(b.interval)
		b.opened++
		b.state.Store(stateOpen)
	}
	if closed {
		b.streak, b.opens = 0, 0
		b.state.Store(stateClosed)
	}
	interval := b.interval
	b.mu.Unlock()

	switch {
	case opened:
		v.logAttrs(ctx, slog.LevelWarn, "introspection: circuit breaker opened",
			slog.Int("failures", streak), slog.String("kind", string(kind)), slog.Duration("retry_in", interval))
		v.observeBreaker(ctx, from, BreakerOpen)
	case closed:
		v.logAttrs(ctx, slog.LevelInfo, "introspection: circuit breaker closed",
			slog.Int("failures", streak), slog.Duration("open_for", openFor))
		v.observeBreaker(ctx, from, BreakerClosed)
	}
}

// send sends the shared request f for token, unless the breaker refuses
// it, to the endpoint in use: with discovery, it waits for the metadata
// when the verifier holds none yet, and fails with FailureDiscovery when
// that cannot be had.
func (v *Verifier) send(ctx context.Context, token string, f *flight) (*answer, error) {
	t, err := v.target(ctx)
	if err != nil {
		return nil, err
	}
	if v.breaker != nil {
		att, err := v.admit(ctx)
		if err != nil {
			return nil, err
		}
		v.mu.Lock()
		late := f.published
		if !late {
			f.attempt = att
		}
		v.mu.Unlock()
		if late {
			// The callers were told the request timed out: sending it
			// now would be for no one.
			v.settle(ctx, att, errNoAnswer)
			return nil, &IntrospectionError{Kind: FailureTimeout, Err: errHung}
		}
	}
	v.stats.upstream.Add(1)
	if v.s.Observer != nil {
		return v.observedIntrospect(ctx, token, t)
	}
	return v.introspect(ctx, token, t)
}

// safeNow returns Settings.Now, and false if it panicked; the panic is
// recovered, counted and logged.
func (v *Verifier) safeNow(ctx context.Context) (t time.Time, ok bool) {
	defer func() {
		if r := recover(); r != nil {
			_ = v.recovered(ctx, "Settings.Now", r)
			ok = false
		}
	}()
	return v.now(), true
}

// breakerStats returns the breaker's state and its transitions to open.
func (v *Verifier) breakerStats() (BreakerState, uint64) {
	b := v.breaker
	if b == nil {
		return BreakerClosed, 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return breakerStates[b.state.Load()], b.opened
}
