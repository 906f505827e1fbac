package introspection

import (
	"context"
	"errors"
	"net"
	"testing"
)

// BenchmarkVerifyOutage verifies a token while the authorization server is
// down: its port refuses connections. With the breaker off every call
// dials and fails; with it on (the default settings) the calls after the
// first five fail at once, and one probe dials per backoff interval.
// upstream/1k counts the requests tried per 1,000 calls.
func BenchmarkVerifyOutage(b *testing.B) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	url := "http://" + l.Addr().String() + "/introspect"
	_ = l.Close() // nothing listens there any more: connections are refused

	for _, bc := range []struct {
		name      string
		threshold int
	}{
		{"breaker=off", -1},
		{"breaker=on", 0},
	} {
		b.Run(bc.name, func(b *testing.B) {
			v, err := NewVerifier(Settings{
				IntrospectionURL: url, ClientID: "rs", ClientSecret: "secret",
				RequiredScopes: []string{"mcp:tools"}, BreakerThreshold: bc.threshold,
			})
			if err != nil {
				b.Fatal(err)
			}
			defer v.Close()
			ctx := context.Background()
			for range DefaultBreakerThreshold { // the failures that open it
				if _, err := v.Verify(ctx, benchToken); !errors.Is(err, ErrIntrospectionFailed) {
					b.Fatal(err)
				}
			}
			before := v.Stats().UpstreamRequests
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(ctx, benchToken); !errors.Is(err, ErrIntrospectionFailed) {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(v.Stats().UpstreamRequests-before)*1000/float64(b.N), "upstream/1k")
		})
	}
}
