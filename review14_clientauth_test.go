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
// that TLSClientCertificate is silently not presented when the caller's
// HTTPClient has an *http.Transport with DialTLSContext set: the verifier
// adds the certificate to the clone's TLSClientConfig, which net/http
// ignores for HTTPS once DialTLSContext is set ("the TLSClientConfig and
// TLSHandshakeTimeout are ignored"). NewVerifier accepts the settings, and
// the server, which asks for a certificate without requiring one, sees
// none: a tls_client_auth request with no certificate, the silent 401 the
// issue names. Settings.TLSClientCertificate's doc: "the verifier uses a
// clone of it ... with the certificate added"; the brief: bad input gets
// a clear error, never acceptance.
func TestReview14TLSClientCertificateReachesACallersDialTLSTransport(t *testing.T) {
	cert := selfSignedCertificate(t, "rs")
	ws := newTLSWireServer(t, tls.RequestClientCert, nil)
	roots := ws.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	callers := &http.Transport{
		DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			d := tls.Dialer{Config: &tls.Config{RootCAs: roots}}
			return d.DialContext(ctx, network, addr)
		},
	}
	t.Cleanup(callers.CloseIdleConnections)

	v, err := NewVerifier(Settings{
		IntrospectionURL:     ws.URL,
		ClientID:             "rs",
		ClientAuthMethod:     TLSClientAuth,
		TLSClientCertificate: &cert,
		HTTPClient:           &http.Client{Transport: callers},
	})
	if err != nil {
		return // refused with an error: the promise holds
	}
	t.Cleanup(func() { _ = v.Close() })
	_, err = v.Verify(context.Background(), "tok")
	require.NoError(t, err, "precondition: the server answers")
	got := ws.received()
	require.Len(t, got, 1)
	assert.Len(t, got[0].certs, 1, "NewVerifier accepted the settings, yet the request carried no client certificate")
}
