// Package rediscache implements introspection.Cache on Redis, so that the
// replicas of a server share one cache: a token is introspected once for all
// of them, and a revocation shows everywhere once the one entry ends.
//
//	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
//	cache, err := rediscache.New(rdb, nil)
//	if err != nil {
//		log.Fatal(err)
//	}
//	v, err := introspection.NewVerifier(introspection.Settings{
//		// ...
//		CacheTTL: time.Minute,
//		Cache:    cache,
//	})
//
// Keys are the prefix followed by the verifier's [introspection.Verifier.CacheKey]
// of the token: a namespace of the introspection URL and client id, a
// colon and the hex SHA-256 of the token, never the token itself. Values are
// the authorization server's JSON answer, which holds no token. Entries
// expire with SET … PX after the TTL the verifier hands over, which never
// reaches past the token's exp.
//
// When Redis fails or hangs, each call gives up after Options.Timeout and
// returns the error; the verifier counts it in Stats().CacheErrors, logs it
// and asks the authorization server instead, so an outage neither accepts
// nor rejects a token by itself.
//
// A Cache is also an [introspection.Invalidator]: [introspection.Verifier.Forget]
// deletes the key and publishes it, never the token, on the channel of the
// verifier's namespace (the prefix, "invalidate:" and the namespace), and
// every verifier on the same Redis with that namespace drops its copy from
// its local tier (Settings.LocalCacheTTL). Each verifier subscribes on a
// connection of its own, which [introspection.Verifier.Close] closes.
//
// A go-redis client leaves the socket alone when a context's deadline
// passes unless its options set ContextTimeoutEnabled; it waits for its own
// ReadTimeout (5 seconds by default) instead. For a *redis.Client, New
// therefore sends the Cache's commands through [redis.Client.WithTimeout],
// which shares the client's connections and bounds each read and write by
// Options.Timeout, whatever the client's options say. Other clients (a
// cluster client, a ring, a type of the caller's) cannot be bounded that
// way: New accepts them only when their options set ContextTimeoutEnabled
// and leave socket deadlines on.
package rediscache

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mcpauth/introspection"
	"github.com/redis/go-redis/v9"
)

// DefaultTimeout bounds each Redis call when Options.Timeout is zero.
const DefaultTimeout = 250 * time.Millisecond

// DefaultPrefix is put before every key when Options.Prefix is empty.
const DefaultPrefix = "introspection:"

// Options configure a Cache. The zero value is usable.
type Options struct {
	// Prefix is put before every key. Zero means [DefaultPrefix].
	Prefix string
	// Timeout bounds each Redis call: the call's context ends after
	// Timeout (which bounds the wait for a connection and the dial), and
	// no socket write or read of the call waits longer. Zero means
	// [DefaultTimeout]; negative is an error.
	Timeout time.Duration
}

// Cache stores introspection answers in Redis. It is safe for concurrent
// use.
type Cache struct {
	rdb     redis.UniversalClient // the caller's client, or its WithTimeout clone
	prefix  string
	timeout time.Duration
}

var _ introspection.Cache = (*Cache)(nil)

// New returns a Cache that uses rdb, which it does not close. opts may be
// nil.
//
// New refuses a client whose calls it cannot bound by Options.Timeout:
// any client but a *redis.Client whose options do not set
// ContextTimeoutEnabled, or that turn socket deadlines off (a negative
// ReadTimeout or WriteTimeout). The error says what to set.
func New(rdb redis.UniversalClient, opts *Options) (*Cache, error) {
	c := &Cache{prefix: DefaultPrefix, timeout: DefaultTimeout}
	if opts != nil {
		if opts.Timeout < 0 {
			return nil, fmt.Errorf("introspection: rediscache: Options.Timeout is negative (%v)", opts.Timeout)
		}
		if opts.Prefix != "" {
			c.prefix = opts.Prefix
		}
		if opts.Timeout > 0 {
			c.timeout = opts.Timeout
		}
	}
	bounded, err := bound(rdb, c.timeout)
	if err != nil {
		return nil, err
	}
	c.rdb = bounded
	return c, nil
}

// bound returns a client whose calls give up after timeout, or an error that
// says why rdb cannot be one.
func bound(rdb redis.UniversalClient, timeout time.Duration) (redis.UniversalClient, error) {
	if rdb == nil {
		return nil, errors.New("introspection: rediscache: the Redis client is nil")
	}
	var contextTimeout bool
	var read, write time.Duration
	switch r := rdb.(type) {
	case *redis.Client:
		// The clone shares r's connections; each read and write gets
		// timeout as its deadline, and go-redis honours the context's
		// deadline while it waits for a connection or dials.
		return r.WithTimeout(timeout), nil
	case interface{ Options() *redis.Options }:
		o := r.Options()
		contextTimeout, read, write = o.ContextTimeoutEnabled, o.ReadTimeout, o.WriteTimeout
	case interface{ Options() *redis.ClusterOptions }:
		o := r.Options()
		contextTimeout, read, write = o.ContextTimeoutEnabled, o.ReadTimeout, o.WriteTimeout
	case interface{ Options() *redis.RingOptions }:
		o := r.Options()
		contextTimeout, read, write = o.ContextTimeoutEnabled, o.ReadTimeout, o.WriteTimeout
	default:
		return nil, fmt.Errorf("introspection: rediscache: cannot tell whether a %T honours context deadlines; "+
			"use a *redis.Client, or a client whose Options() set ContextTimeoutEnabled", rdb)
	}
	if !contextTimeout {
		return nil, fmt.Errorf("introspection: rediscache: a %T without ContextTimeoutEnabled would wait for its "+
			"ReadTimeout instead of Options.Timeout when Redis hangs; set ContextTimeoutEnabled: true in its options", rdb)
	}
	if read < 0 || write < 0 {
		return nil, fmt.Errorf("introspection: rediscache: a %T with a negative ReadTimeout or WriteTimeout sets no "+
			"socket deadline, so a hung Redis would block forever; leave them zero or positive", rdb)
	}
	return rdb, nil
}

// Get returns the answer stored under key.
func (c *Cache) Get(ctx context.Context, key string) ([]byte, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	b, err := c.rdb.Get(ctx, c.prefix+key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, c.fail(ctx, "GET", err)
	}
	return b, true, nil
}

// Set stores value under key for ttl, in milliseconds (SET key value PX ttl).
func (c *Cache) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	ms := ttl.Milliseconds()
	if ms < 1 {
		return nil // shorter than Redis can keep it: not worth a round trip
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if err := c.rdb.Do(ctx, "SET", c.prefix+key, value, "PX", ms).Err(); err != nil {
		return c.fail(ctx, "SET", err)
	}
	return nil
}

// Delete removes key.
func (c *Cache) Delete(ctx context.Context, key string) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if err := c.rdb.Del(ctx, c.prefix+key).Err(); err != nil {
		return c.fail(ctx, "DEL", err)
	}
	return nil
}

// fail wraps err from the command cmd. When the call's deadline has
// passed, a socket timeout is that deadline at work (the socket's deadline
// is set a little after the context's), so the error also wraps
// context.DeadlineExceeded.
func (c *Cache) fail(ctx context.Context, cmd string, err error) error {
	ctxErr := ctx.Err()
	if dl, ok := ctx.Deadline(); ctxErr == nil && ok && !time.Now().Before(dl) {
		// The deadline has passed but the context's timer has not run yet.
		ctxErr = context.DeadlineExceeded
	}
	if ctxErr != nil && !errors.Is(err, ctxErr) {
		return fmt.Errorf("introspection: rediscache: %s gave up: %w: %w", cmd, ctxErr, err)
	}
	return fmt.Errorf("introspection: rediscache: %s: %w", cmd, err)
}
