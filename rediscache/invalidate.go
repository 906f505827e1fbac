package rediscache

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/mcpauth/introspection"
	"github.com/redis/go-redis/v9"
)

// invalidateChannel follows the prefix in the name of the channel that
// carries a namespace's invalidations: prefix, "invalidate:", namespace.
const invalidateChannel = "invalidate:"

// Bounds of a subscription to invalidations.
const (
	// subscriptionCheck is how long a subscription waits for a message
	// before it pings Redis, and then for any message, the answer to the
	// ping included, before it takes the connection for dead and
	// subscribes again: a Redis that hangs is noticed within twice that.
	subscriptionCheck = time.Second
	// resubscribeMinWait and resubscribeMaxWait bound the wait before
	// subscribing again after a failure, which doubles from the first to
	// the second while Redis stays away, jittered by up to a fifth.
	resubscribeMinWait = 50 * time.Millisecond
	resubscribeMaxWait = 2 * time.Second
)

// cacheKey is the form of a [introspection.Verifier.CacheKey]: a namespace
// of 32 hex digits, a colon and the 64 hex digits of a SHA-256 digest.
var cacheKey = regexp.MustCompile(`^[0-9a-f]{32}:[0-9a-f]{64}$`)

var _ introspection.Invalidator = (*Cache)(nil)

// Invalidate implements [introspection.Invalidator]: it publishes key, a
// verifier's CacheKey of a token it forgot, never the token, on the
// channel of key's namespace (PUBLISH prefix+"invalidate:"+namespace key),
// so that every verifier subscribed with that namespace drops its local
// copy. It refuses a key that is not a CacheKey, and gives up after
// Options.Timeout.
func (c *Cache) Invalidate(ctx context.Context, key string) error {
	if !cacheKey.MatchString(key) {
		return errors.New("introspection: rediscache: an invalidation carries a cache key: 32 hex digits, a colon and 64 hex digits")
	}
	namespace, _, _ := strings.Cut(key, ":")
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if err := c.rdb.Publish(ctx, c.channel(namespace), key).Err(); err != nil {
		return c.fail(ctx, "PUBLISH", err)
	}
	return nil
}

// channel returns the name of the channel of namespace's invalidations.
func (c *Cache) channel(namespace string) string {
	return c.prefix + invalidateChannel + namespace
}

// SubscribeInvalidations implements [introspection.Invalidator]: it
// subscribes, on a connection of its own, to the channel of namespace's
// invalidations and hands each message to sub, which checks it. When the
// connection fails, or Redis does not answer a ping within a second of
// silence, it tells sub that the subscription is down and subscribes
// again, after 50 ms at first and up to 2 s while Redis stays away; sub
// hears when it is up again. stop closes the connection and returns once
// the subscription's goroutine has ended.
func (c *Cache) SubscribeInvalidations(namespace string, sub introspection.InvalidationSubscriber) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	s := &subscription{rdb: c.rdb, channel: c.channel(namespace), sub: sub, done: make(chan struct{})}
	go s.run(ctx)
	return sync.OnceFunc(func() {
		cancel()
		s.stop()
		<-s.done
	})
}

// subscription is one verifier's subscription to its invalidations.
type subscription struct {
	rdb     redis.UniversalClient
	channel string
	sub     introspection.InvalidationSubscriber
	done    chan struct{} // closed when run returns

	mu      sync.Mutex    // guards ps and stopped
	ps      *redis.PubSub // the current connection's, for stop to close
	stopped bool
}

// run subscribes, serves the subscription until its connection fails,
// and subscribes again, until ctx ends.
func (s *subscription) run(ctx context.Context) {
	defer close(s.done)
	wait := resubscribeMinWait
	for {
		ps := s.rdb.Subscribe(ctx, s.channel)
		if !s.attach(ps) {
			_ = ps.Close()
			return
		}
		up := s.serve(ctx, ps)
		s.attach(nil)
		_ = ps.Close()
		if up {
			s.sub.Subscribed(false)
			wait = resubscribeMinWait
		}
		jittered := wait + time.Duration(rand.Int64N(int64(wait)/5*2+1)) - wait/5
		t := time.NewTimer(jittered)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
		wait = min(2*wait, resubscribeMaxWait)
	}
}

// attach makes ps the connection that stop closes, and reports false if
// stop was called already.
func (s *subscription) attach(ps *redis.PubSub) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return false
	}
	s.ps = ps
	return true
}

// stop closes the current connection, which ends its read.
func (s *subscription) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
	if s.ps != nil {
		_ = s.ps.Close()
	}
}

// serve reads the messages of ps, handing invalidations to sub, until the
// connection fails or ctx ends, and reports whether Redis confirmed the
// subscription, which it tells sub.
func (s *subscription) serve(ctx context.Context, ps *redis.PubSub) (up bool) {
	pinged := false
	for {
		msg, err := ps.ReceiveTimeout(ctx, subscriptionCheck)
		if err != nil {
			if ctx.Err() == nil && !pinged && isTimeout(err) && ps.Ping(ctx) == nil {
				pinged = true
				continue
			}
			return up
		}
		pinged = false
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" && m.Channel == s.channel && !up {
				up = true
				s.sub.Subscribed(true)
			}
		case *redis.Message:
			if up && m.Channel == s.channel {
				s.sub.Invalidated(m.Payload)
			}
		}
	}
}

// isTimeout reports whether err is a read that timed out.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
