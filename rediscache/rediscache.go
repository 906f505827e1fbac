// Package rediscache implements introspection.Cache on Redis, so that the
// replicas of a server share one cache: a token is introspected once for all
// of them, and a revocation shows everywhere once the one entry ends.
//
//	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
//	v, err := introspection.NewVerifier(introspection.Settings{
//		// ...
//		CacheTTL: time.Minute,
//		Cache:    rediscache.New(rdb, nil),
//	})
//
// Keys are the prefix followed by the hex SHA-256 of the token; values are
// the authorization server's JSON answer, which holds no token. Entries
// expire with SET … PX after the TTL the verifier hands over, which never
// reaches past the token's exp.
//
// When Redis fails or is slow, each call gives up after Options.Timeout and
// returns the error; the verifier counts it in Stats().CacheErrors, logs it
// and asks the authorization server instead, so an outage neither accepts
// nor rejects a token by itself.
package rediscache

import (
	"context"
	"errors"
	"time"

	"github.com/mcpauth/introspection"
	"github.com/redis/go-redis/v9"
)

// Options configure a Cache. The zero value is usable.
type Options struct {
	// Prefix is put before every key. Zero means "introspection:".
	Prefix string
	// Timeout bounds each Redis call. Zero means 250 milliseconds.
	Timeout time.Duration
}

// Cache stores introspection answers in Redis. It is safe for concurrent
// use.
type Cache struct {
	rdb     redis.UniversalClient
	prefix  string
	timeout time.Duration
}

var _ introspection.Cache = (*Cache)(nil)

// New returns a Cache that uses rdb. opts may be nil.
func New(rdb redis.UniversalClient, opts *Options) *Cache {
	c := &Cache{rdb: rdb, prefix: "introspection:", timeout: 250 * time.Millisecond}
	if opts != nil {
		if opts.Prefix != "" {
			c.prefix = opts.Prefix
		}
		if opts.Timeout > 0 {
			c.timeout = opts.Timeout
		}
	}
	return c
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
		return nil, false, err
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
	return c.rdb.Do(ctx, "SET", c.prefix+key, value, "PX", ms).Err()
}

// Delete removes key.
func (c *Cache) Delete(ctx context.Context, key string) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	return c.rdb.Del(ctx, c.prefix+key).Err()
}
