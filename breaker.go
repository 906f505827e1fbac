package introspection

import "time"

// BreakerState is the state of a [Verifier]'s circuit breaker.
type BreakerState string

const (
	BreakerClosed   BreakerState = "closed"
	BreakerOpen     BreakerState = "open"
	BreakerHalfOpen BreakerState = "half_open"
)

const (
	DefaultBreakerThreshold  = 5
	DefaultBreakerMinBackoff = time.Second
	DefaultBreakerMaxBackoff = time.Minute
)

type breaker struct {
	rand func(n int64) int64
}

func (b *breaker) backoff(n int) time.Duration { return 0 }
