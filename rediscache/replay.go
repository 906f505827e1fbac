package rediscache

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"time"

	"github.com/mcpauth/introspection"
	"github.com/redis/go-redis/v9"
)

// replayNamespace follows the prefix in the keys of [Cache.Claim]. The
// cache's own keys are a hex namespace, a colon and a hex digest, so no
// cache key starts with it.
const replayNamespace = "dpop-jti:"

// maxReplayKey is the longest key the [introspection.ReplayStore] contract
// allows.
const maxReplayKey = 64

var _ introspection.ReplayStore = (*Cache)(nil)

// Claim implements [introspection.ReplayStore], so that the replicas of a
// server that share a Redis refuse a DPoP proof replayed to any of them.
// It records key under the prefix and "dpop-jti:" with one SET … NX PX,
// which Redis runs atomically, for ttl rounded up to whole milliseconds.
// It reports false when the key was there already, also when the client
// resent the SET after losing its reply (each claim writes its own random
// value and, when NX finds the key, reads it back), and an error, never
// true, when Redis fails or does not answer within Options.Timeout. It
// refuses a key that is empty, longer than 64 bytes or not of
// [A-Za-z0-9_:-], and a ttl that is not positive.
func (c *Cache) Claim(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	if !validReplayKey(key) {
		return false, errors.New("introspection: rediscache: replay key is empty, longer than 64 bytes or not of [A-Za-z0-9_:-]")
	}
	if ttl <= 0 {
		return false, errors.New("introspection: rediscache: replay TTL is not positive")
	}
	ms := (ttl + time.Millisecond - 1) / time.Millisecond // PX 0 is an error
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	// Each claim stores its own random value: when the client resends a
	// SET whose reply was lost, NX finds the key the first attempt wrote,
	// and the value tells that it is this claim's.
	var nonce [16]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return false, err
	}
	mine := hex.EncodeToString(nonce[:])
	full := c.prefix + replayNamespace + key
	err := c.rdb.Do(ctx, "SET", full, mine, "NX", "PX", int64(ms)).Err()
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, redis.Nil) {
		return false, c.fail(ctx, "SET NX", err)
	}
	// NX: the key was there, from another claim or from a resent one.
	got, err := c.rdb.Get(ctx, full).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return false, nil // it expired in between: it was there, so not new
	case err != nil:
		return false, c.fail(ctx, "GET", err)
	}
	return got == mine, nil
}

// validReplayKey reports whether key is 1 to 64 bytes of [A-Za-z0-9_:-].
func validReplayKey(key string) bool {
	if key == "" || len(key) > maxReplayKey {
		return false
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}
