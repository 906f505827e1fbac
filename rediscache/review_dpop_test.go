package rediscache_test

import (
	"bytes"
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpauth/introspection/rediscache"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// replyDropper is a TCP proxy to a Redis server that delivers the first
// command holding "dpop-jti:" to the server but drops the server's reply
// and closes the client's connection, as a connection reset after the
// write does.
type replyDropper struct {
	addr    string
	dropped atomic.Bool
}

func startReplyDropper(t *testing.T, redisAddr string) *replyDropper {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	p := &replyDropper{addr: l.Addr().String()}
	go func() {
		for {
			client, err := l.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("tcp", redisAddr)
			if err != nil {
				_ = client.Close()
				continue
			}
			var dropNext atomic.Bool
			go func() { // client to server
				defer server.Close()
				buf := make([]byte, 64<<10)
				for {
					n, err := client.Read(buf)
					if n > 0 {
						if bytes.Contains(buf[:n], []byte("dpop-jti:")) && p.dropped.CompareAndSwap(false, true) {
							dropNext.Store(true)
						}
						if _, werr := server.Write(buf[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
			go func() { // server to client
				defer client.Close()
				buf := make([]byte, 64<<10)
				for {
					n, err := server.Read(buf)
					if n > 0 {
						if dropNext.Load() {
							return // the reply is lost with the connection
						}
						if _, werr := client.Write(buf[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	return p
}

// TestReviewClaimOfANewKeyIsNeverFalse holds Claim to "It reports false
// when the key was there already": a key that no one claimed before is
// new, or the claim is an error, even when the connection breaks after
// Redis ran the SET and go-redis sends it again (its default MaxRetries).
// A false here refuses the client's fresh proof as a replay.
func TestReviewClaimOfANewKeyIsNeverFalse(t *testing.T) {
	rs := startRedis(t)
	p := startReplyDropper(t, rs.addr)
	rdb := redis.NewClient(&redis.Options{Addr: p.addr})
	t.Cleanup(func() { _ = rdb.Close() })
	c := newCache(t, rdb, &rediscache.Options{Timeout: 5 * time.Second})
	require.NoError(t, rdb.Ping(context.Background()).Err())

	ok, err := c.Claim(context.Background(), jti, time.Minute)
	require.True(t, p.dropped.Load(), "the proxy dropped a reply")
	if err == nil {
		assert.True(t, ok, "a key claimed for the first time was reported as seen before")
	}
}
