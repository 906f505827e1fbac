package introspection

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/mcpauth/introspection/introspectiontest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// selfSigned returns a self-signed client certificate with its key, as
// RFC 8705 §2.2 clients use.
func selfSigned(t *testing.T, name string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	leaf, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// x5t returns the RFC 8705 §3.1 thumbprint of c.
func x5t(c tls.Certificate) string {
	sum := sha256.Sum256(c.Certificate[0])
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// TestCertificateBoundToken shows RFC 8705 §3 at the resource server: a
// token bound to a client certificate is accepted over TLS with that
// certificate, and refused without a certificate, with another one, and
// as a plain bearer token to Verify.
func TestCertificateBoundToken(t *testing.T) {
	as := newAS(t, nil)
	v := newVerifier(t, as.IntrospectionURL, nil, nil)
	mine, other := selfSigned(t, "mine"), selfSigned(t, "other")
	bound := as.Issue(introspectiontest.TokenOptions{Extra: map[string]any{"cnf": map[string]any{"x5t#S256": x5t(mine)}}})
	unbound := as.Issue(introspectiontest.TokenOptions{})

	srv := httptest.NewUnstartedServer(RequireBearerToken(v, nil)(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})))
	srv.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	srv.StartTLS()
	t.Cleanup(srv.Close)

	call := func(t *testing.T, cert *tls.Certificate, token string) *http.Response {
		t.Helper()
		tr := srv.Client().Transport.(*http.Transport).Clone()
		if cert != nil {
			tr.TLSClientConfig.Certificates = []tls.Certificate{*cert}
		}
		t.Cleanup(tr.CloseIdleConnections)
		r, err := http.NewRequest("GET", srv.URL, nil)
		require.NoError(t, err)
		r.Header.Set("Authorization", "Bearer "+token)
		resp, err := (&http.Client{Transport: tr}).Do(r)
		require.NoError(t, err)
		resp.Body.Close()
		return resp
	}
	tests := []struct {
		name   string
		cert   *tls.Certificate
		token  string
		status int
	}{
		{"bound token with its certificate", &mine, bound, http.StatusNoContent},
		{"bound token without a certificate", nil, bound, http.StatusUnauthorized},
		{"bound token with another certificate", &other, bound, http.StatusUnauthorized},
		{"unbound token with a certificate", &mine, unbound, http.StatusNoContent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := call(t, tc.cert, tc.token)
			assert.Equal(t, tc.status, resp.StatusCode)
			if tc.status == http.StatusUnauthorized {
				assert.Contains(t, resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`)
			}
		})
	}

	errs := []struct {
		name string
		r    *http.Request
		want error
	}{
		{"no TLS", httptest.NewRequest("GET", "/", nil), ErrProofRequired},
		{"another certificate", withPeer(httptest.NewRequest("GET", "/", nil), other), ErrProofMismatch},
	}
	for _, tc := range errs {
		t.Run("error/"+tc.name, func(t *testing.T) {
			_, err := v.verify(t.Context(), bound, possession{r: tc.r})
			assert.ErrorIs(t, err, tc.want)
		})
	}
	_, err := v.verify(t.Context(), bound, possession{r: withPeer(httptest.NewRequest("GET", "/", nil), mine)})
	assert.NoError(t, err)
	_, err = v.Verify(t.Context(), bound)
	assert.ErrorIs(t, err, ErrProofRequired)
}

// withPeer returns r as if it came over TLS with client certificate c.
func withPeer(r *http.Request, c tls.Certificate) *http.Request {
	r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{c.Leaf}}
	return r
}

// TestClientCertificateHook shows Settings.ClientCertificate, for servers
// behind a TLS-terminating proxy: its certificate decides, r.TLS is not
// looked at, and an error or no certificate refuses the bound token.
func TestClientCertificateHook(t *testing.T) {
	mine, other := selfSigned(t, "mine"), selfSigned(t, "other")
	tests := []struct {
		name string
		hook func(*http.Request) (*x509.Certificate, error)
		tls  *tls.Certificate
		want error
	}{
		{"the hook's certificate", func(*http.Request) (*x509.Certificate, error) { return mine.Leaf, nil }, nil, nil},
		{"the hook wins over r.TLS", func(*http.Request) (*x509.Certificate, error) { return other.Leaf, nil }, &mine, ErrProofMismatch},
		{"no certificate", func(*http.Request) (*x509.Certificate, error) { return nil, nil }, &mine, ErrProofRequired},
		{"an error", func(*http.Request) (*x509.Certificate, error) { return mine.Leaf, errors.New("bad header") }, &mine, ErrProofRequired},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			as := newAS(t, nil)
			v := newVerifier(t, as.IntrospectionURL, nil, func(s *Settings) { s.ClientCertificate = tc.hook })
			bound := as.Issue(introspectiontest.TokenOptions{Extra: map[string]any{"cnf": map[string]any{"x5t#S256": x5t(mine)}}})
			r := httptest.NewRequest("GET", "/", nil)
			if tc.tls != nil {
				r = withPeer(r, *tc.tls)
			}
			_, err := v.verify(t.Context(), bound, possession{r: r})
			if tc.want == nil {
				assert.NoError(t, err)
			} else {
				assert.ErrorIs(t, err, tc.want)
			}
		})
	}
}
