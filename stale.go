package introspection

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// Stale answers (Settings.StaleIfError): when the authorization server
// cannot answer, a cached answer whose entry ended less than StaleIfError
// ago gives the verdict, with every check run again at the current time.
// The caches keep entries that much longer and record until when each is
// fresh; a normal lookup returns fresh entries only.

// staleLogInterval is the least time, by Settings.Now, between two
// warnings that stale answers are being served.
const staleLogInterval = 10 * time.Second

// freshUntilPrefix begins a value handed to a [Cache] by a verifier with
// StaleIfError: "fresh_until=", the time the answer stops being fresh in
// Unix milliseconds (1 to 18 digits), "\n", and the answer's JSON. A value
// that does not begin with it is the answer's JSON alone, as earlier
// versions wrote, fresh for as long as the store keeps it: an RFC 7662
// answer is a JSON object, which never begins with a letter.
const freshUntilPrefix = "fresh_until="

// MaxStaleIfError bounds Settings.StaleIfError: answers are not served
// stale for more than a week after their entry ended, and the TTL a Cache
// is handed stays far from overflowing.
const MaxStaleIfError = 7 * 24 * time.Hour

// maxFreshUntilDigits keeps the milliseconds within an int64.
const maxFreshUntilDigits = 18

// staleLog rate-limits the warnings about stale answers.
type staleLog struct {
	next   atomic.Int64  // Settings.Now, in Unix nanoseconds, before which no warning is logged
	served atomic.Uint64 // stale verdicts since the last warning
}

// staleNeedsCacheTTL is the error of NewVerifier for StaleIfError without
// CacheTTL.
func staleNeedsCacheTTL() error {
	const why = ": stale answers are cache entries kept longer"
	return &settingError{"introspection: StaleIfError needs CacheTTL" + why,
		func(p string) string { return "introspection: " + p + "STALE_IF_ERROR needs " + p + "CACHE_TTL" + why }}
}

// serverCouldNotAnswer reports whether e, a failure of the shared request,
// lets a stale answer be used: any failure but a 4xx other than 429, which
// is the server's answer about the request (a bad client secret, say).
func serverCouldNotAnswer(e *IntrospectionError) bool {
	return e.Kind != FailureStatus || e.StatusCode == http.StatusTooManyRequests ||
		e.StatusCode < 400 || e.StatusCode >= 500
}

// staleIfError ends a call of Verify for token, presented with p, whose
// shared request failed with err. With StaleIfError, when the server could
// not answer, the cached answer whose entry ended less than StaleIfError
// ago (for an active one, before its exp) gives the verdict, every check
// run again now; otherwise err is returned and counted as failed. An error
// of the caller's own context is returned as it is: it was counted as
// canceled.
func (v *Verifier) staleIfError(ctx context.Context, token string, p possession, err error) (*AccessToken, error) {
	ie, ok := errors.AsType[*IntrospectionError](err)
	if !ok {
		return nil, err
	}
	if v.s.StaleIfError > 0 && v.cache != nil && serverCouldNotAnswer(ie) {
		now := v.now()
		if a, freshUntil, ok := v.cache.lookup(ctx, token, now); ok && v.usableStale(a, freshUntil, now) {
			t, cerr := v.check(ctx, a, token, p, false, now)
			if _, failed := cerr.(*IntrospectionError); !failed && !freshUntil.IsZero() && !now.Before(freshUntil) {
				v.stats.staleServed.Add(1)
				v.observeCacheLookup(ctx, CacheStale)
				v.logStale(ctx, now, ie)
				if t != nil {
					t.Stale = true
				}
			}
			return t, cerr // check counted the verdict, or its own failure
		}
	}
	v.stats.failed.Add(1)
	return nil, err
}

// usableStale reports whether a, cached and fresh until freshUntil (zero:
// as long as it is kept), may give a verdict at now: its entry ended less
// than StaleIfError ago, and an active answer's exp is still to come
// (RFC 7662 §4), whatever Leeway.
func (v *Verifier) usableStale(a *answer, freshUntil, now time.Time) bool {
	if !freshUntil.IsZero() && !now.Before(freshUntil.Add(v.s.StaleIfError)) {
		return false
	}
	return !a.active || a.expiresAt.IsZero() || now.Before(a.expiresAt)
}

// logStale logs, at warn level and at most once per staleLogInterval, that
// stale answers are being served, with how many since the last record and
// the failure of the server that caused this one. A clock that stepped
// back by more than the interval does not silence it.
func (v *Verifier) logStale(ctx context.Context, now time.Time, cause *IntrospectionError) {
	l := &v.staleLog
	l.served.Add(1)
	t, next := now.UnixNano(), l.next.Load()
	if t < next && next-t <= int64(staleLogInterval) {
		return
	}
	if !l.next.CompareAndSwap(next, t+int64(staleLogInterval)) {
		return // another caller logs
	}
	served := l.served.Swap(0)
	v.safely(func() {
		if v.log.Enabled(ctx, slog.LevelWarn) {
			v.log.LogAttrs(ctx, slog.LevelWarn, "introspection: the authorization server could not answer; serving stale answers",
				slog.Uint64("served", served), slog.String("error", cause.Error()))
		}
	})
}

// forgetStale removes the cached answer for token when the server's newer
// answer is not kept (ttl is not positive): an inactive answer without
// NegativeCacheTTL, an answer past its exp, so that the older answer is
// never served stale in its place.
func (v *Verifier) forgetStale(ctx context.Context, token string, ttl time.Duration) {
	if ttl <= 0 && v.s.StaleIfError > 0 {
		v.cache.forget(ctx, token)
	}
}

// staleFor returns how long past freshUntil an entry for a is kept to be
// served stale: window, but for an active answer never past its exp.
func staleFor(a *answer, freshUntil time.Time, window time.Duration) time.Duration {
	if window <= 0 {
		return 0
	}
	if a.active && !a.expiresAt.IsZero() {
		window = min(window, a.expiresAt.Sub(freshUntil))
	}
	return max(window, 0)
}

// lookup returns the entry for token, fresh or kept to be served stale
// until now, with the time it stops being fresh.
func (c *memoryCache) lookup(_ context.Context, token string, now time.Time) (*answer, time.Time, bool) {
	sh := c.shard(token)
	sh.mu.RLock()
	e := sh.m[token]
	sh.mu.RUnlock()
	if e == nil || !now.Before(e.end()) {
		return nil, time.Time{}, false
	}
	if !e.visited.Load() {
		e.visited.Store(true)
	}
	return e.a, e.fresh, true
}

// forget removes the entry for token, if any.
func (c *memoryCache) forget(_ context.Context, token string) {
	sh := c.shard(token)
	sh.mu.Lock()
	if e := sh.m[token]; e != nil {
		sh.remove(e)
	}
	sh.mu.Unlock()
}

// forget drops the local copy of the answer for token, if any, and
// deletes the value for it from the Cache unless the Cache cools down. A
// failure is a cache error: counted, logged, and the start of a cooldown.
func (s *sharedStore) forget(ctx context.Context, token string) {
	if s.local != nil {
		s.local.forget(ctx, token)
	}
	if !s.available() {
		return
	}
	_ = s.delete(ctx, s.v.CacheKey(token))
}

// withFreshUntil returns the value to store for a, whose JSON is b, to be
// fresh for ttl from now, and the TTL to hand to the Cache: ttl plus the
// time it is kept to be served stale. The time is written in whole
// milliseconds, rounded down.
func withFreshUntil(b []byte, a *answer, now time.Time, ttl, window time.Duration) ([]byte, time.Duration) {
	freshUntil := now.Add(ttl)
	out := make([]byte, 0, len(freshUntilPrefix)+maxFreshUntilDigits+1+len(b))
	out = append(out, freshUntilPrefix...)
	out = strconv.AppendInt(out, freshUntil.UnixMilli(), 10)
	out = append(out, '\n')
	return append(out, b...), ttl + staleFor(a, freshUntil, window)
}

// splitFreshUntil splits a value read from a Cache into the time its answer
// stops being fresh (zero for a value without the fresh_until line: fresh
// while the store keeps it) and the answer's JSON.
func splitFreshUntil(b []byte) (time.Time, []byte, error) {
	rest, ok := bytes.CutPrefix(b, []byte(freshUntilPrefix))
	if !ok {
		return time.Time{}, b, nil
	}
	n := bytes.IndexByte(rest[:min(len(rest), maxFreshUntilDigits+1)], '\n')
	if n < 1 || bytes.ContainsFunc(rest[:n], func(r rune) bool { return r < '0' || r > '9' }) {
		return time.Time{}, nil, errors.New("value has a malformed fresh_until line")
	}
	ms, err := strconv.ParseInt(string(rest[:n]), 10, 64)
	if err != nil {
		return time.Time{}, nil, errors.New("value has a malformed fresh_until line")
	}
	return time.UnixMilli(ms), rest[n+1:], nil
}
