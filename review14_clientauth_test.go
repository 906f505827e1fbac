package introspection

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReview14TLSClientCertificateReachesACallersDialTLSTransport shows
// that TLSClientCertificate is never silently dropped when the caller's
// HTTPClient has an *http.Transport with DialTLSContext (or the older
// DialTLS) set: net/http then ignores the TLSClientConfig the verifier
// would add the certificate to ("the TLSClientConfig and
// TLSHandshakeTimeout are ignored"), so NewVerifier refuses the settings
// with an error that says to present the certificate in that dialer. The
// same transport without TLSClientCertificate, presenting a certificate
// itself, is accepted, and the server receives its certificate.
func TestReview14TLSClientCertificateReachesACallersDialTLSTransport(t *testing.T) {
	cert := selfSignedCertificate(t, "rs")
	ws := newTLSWireServer(t, tls.RequestClientCert, nil)
	roots := ws.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	dial := func(certs []tls.Certificate) func(ctx context.Context, network, addr string) (net.Conn, error) {
		return func(ctx context.Context, network, addr string) (net.Conn, error) {
			d := tls.Dialer{Config: &tls.Config{RootCAs: roots, Certificates: certs}}
			return d.DialContext(ctx, network, addr)
		}
	}
	for _, tc := range []struct {
		name      string
		transport func(dial func(context.Context, string, string) (net.Conn, error)) *http.Transport
	}{
		{"DialTLSContext", func(d func(context.Context, string, string) (net.Conn, error)) *http.Transport {
			return &http.Transport{DialTLSContext: d}
		}},
		{"DialTLS", func(d func(context.Context, string, string) (net.Conn, error)) *http.Transport {
			//lint:ignore SA1019 the deprecated field is what is refused
			return &http.Transport{DialTLS: func(network, addr string) (net.Conn, error) {
				return d(context.Background(), network, addr)
			}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			callers := tc.transport(dial(nil))
			t.Cleanup(callers.CloseIdleConnections)
			_, err := NewVerifier(Settings{
				IntrospectionURL:     ws.URL,
				ClientID:             "rs",
				ClientAuthMethod:     TLSClientAuth,
				TLSClientCertificate: &cert,
				HTTPClient:           &http.Client{Transport: callers},
			})
			require.Error(t, err, "the certificate would never be presented")
			for _, w := range []string{"introspection: TLSClientCertificate", "DialTLSContext", "present the certificate in that dialer", "leave TLSClientCertificate unset"} {
				assert.Contains(t, err.Error(), w)
			}

			// As the error says: the dialer presents the certificate.
			presenting := tc.transport(dial([]tls.Certificate{cert}))
			t.Cleanup(presenting.CloseIdleConnections)
			v, err := NewVerifier(Settings{
				IntrospectionURL: ws.URL,
				ClientID:         "rs",
				ClientAuthMethod: TLSClientAuth,
				HTTPClient:       &http.Client{Transport: presenting},
			})
			require.NoError(t, err)
			t.Cleanup(func() { _ = v.Close() })
			before := len(ws.received())
			_, err = v.Verify(context.Background(), "tok-"+tc.name)
			require.NoError(t, err, "precondition: the server answers")
			got := ws.received()
			require.Len(t, got, before+1)
			assert.Len(t, got[before].certs, 1, "the dialer's certificate reached the server")
		})
	}
}
