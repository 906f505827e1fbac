package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The bounds of the files the tool reads, as introspection.SettingsFromEnv
// applies them.
const (
	secretFileBound = 64 << 10
	keyFileBound    = 1 << 20
)

// acceptingServer is an introspection endpoint that calls every token
// active and records the kid of each client assertion it receives ("" for
// a request without one).
type acceptingServer struct {
	*httptest.Server
	mu   sync.Mutex // guards kids
	kids []string
}

func newAcceptingServer(t *testing.T) *acceptingServer {
	t.Helper()
	as := &acceptingServer{}
	as.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		kid := ""
		if a := r.PostForm.Get("client_assertion"); a != "" {
			head, _, _ := strings.Cut(a, ".")
			b, _ := base64.RawURLEncoding.DecodeString(head)
			var h struct {
				Kid string `json:"kid"`
			}
			_ = json.Unmarshal(b, &h)
			kid = h.Kid
		}
		as.mu.Lock()
		as.kids = append(as.kids, kid)
		as.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"active":true,"sub":"alice"}`))
	}))
	t.Cleanup(as.Close)
	t.Setenv("INTROSPECTION_URL", as.URL)
	t.Setenv("INTROSPECTION_CLIENT_ID", "rs")
	t.Setenv("INTROSPECTION_CLIENT_SECRET", "")
	return as
}

func (as *acceptingServer) lastKid(t *testing.T) string {
	t.Helper()
	as.mu.Lock()
	defer as.mu.Unlock()
	require.NotEmpty(t, as.kids, "no request reached the server")
	return as.kids[len(as.kids)-1]
}

// ecKeyPEM returns a new P-256 key in a PKCS#8 PEM block.
func ecKeyPEM(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	der, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// ecKeyJWK returns a new P-256 private JWK with kid.
func ecKeyJWK(t *testing.T, kid string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	point, err := key.PublicKey.Bytes()
	require.NoError(t, err)
	d, err := key.Bytes()
	require.NoError(t, err)
	b64 := base64.RawURLEncoding.EncodeToString
	b, err := json.Marshal(map[string]string{"kty": "EC", "crv": "P-256", "kid": kid,
		"x": b64(point[1:33]), "y": b64(point[33:]), "d": b64(d)})
	require.NoError(t, err)
	return b
}

// certificatePEM returns a new self-signed client certificate and its key,
// each PEM-encoded.
func certificatePEM(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "rs"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	_, err = tls.X509KeyPair(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	require.NoError(t, err, "precondition: a usable pair")
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
}

// TestFileFlagsReplaceTheirVariables shows that a flag naming a file
// replaces the environment variable that names one: the variable, here a
// file that does not exist, is neither read nor able to abort the tool,
// and it holds its own value again once the tool has read its settings.
func TestFileFlagsReplaceTheirVariables(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	certPEM, certKeyPEM := certificatePEM(t)
	certFile, certKeyFile := writeFile(t, "cert.pem", certPEM), writeFile(t, "certkey.pem", certKeyPEM)
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
	}{
		{"-client-secret-file", map[string]string{"CLIENT_SECRET_FILE": missing, "CLIENT_SECRET": "from-the-environment"},
			[]string{"-client-secret-file", writeFile(t, "secret", []byte("from-the-flag\n"))}},
		{"-private-key-file", map[string]string{"PRIVATE_KEY_FILE": missing},
			[]string{"-private-key-file", writeFile(t, "key.pem", ecKeyPEM(t))}},
		{"-tls-cert-file and -tls-key-file", map[string]string{"TLS_CERT_FILE": missing, "TLS_KEY_FILE": missing, "CLIENT_SECRET": "s"},
			[]string{"-tls-cert-file", certFile, "-tls-key-file", certKeyFile}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			newAcceptingServer(t)
			for k, v := range tc.env {
				t.Setenv("INTROSPECTION_"+k, v)
			}
			code, out, errOut := runTool(t, "", append(tc.args, "--", "tok")...)
			assert.Equal(t, 0, code, "stderr: %s", errOut)
			assert.Contains(t, out, "verdict: accepted")
			for k, v := range tc.env {
				assert.Equal(t, v, os.Getenv("INTROSPECTION_"+k), "the variable is restored")
			}
		})
	}
}

// TestPrivateKeyIDFromTheFlagOrTheEnvironment shows the kid the client
// assertions carry: -private-key-id, else $INTROSPECTION_PRIVATE_KEY_ID,
// else the JWK's own kid, whether the key comes from -private-key-file or
// from $INTROSPECTION_PRIVATE_KEY_FILE.
func TestPrivateKeyIDFromTheFlagOrTheEnvironment(t *testing.T) {
	jwk := writeFile(t, "key.jwk", ecKeyJWK(t, "k-jwk"))
	for _, tc := range []struct {
		name   string
		envID  string
		flagID string
		byFlag bool
		want   string
	}{
		{"the JWK's kid, key by flag", "", "", true, "k-jwk"},
		{"the environment's kid, key by flag", "k-env", "", true, "k-env"},
		{"the flag's kid, key by flag", "k-env", "k-flag", true, "k-flag"},
		{"the JWK's kid, key by the environment", "", "", false, "k-jwk"},
		{"the environment's kid, key by the environment", "k-env", "", false, "k-env"},
		{"the flag's kid, key by the environment", "k-env", "k-flag", false, "k-flag"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			as := newAcceptingServer(t)
			t.Setenv("INTROSPECTION_PRIVATE_KEY_ID", tc.envID)
			t.Setenv("INTROSPECTION_PRIVATE_KEY_FILE", "")
			var args []string
			if tc.byFlag {
				args = append(args, "-private-key-file", jwk)
			} else {
				t.Setenv("INTROSPECTION_PRIVATE_KEY_FILE", jwk)
			}
			if tc.flagID != "" {
				args = append(args, "-private-key-id", tc.flagID)
			}
			code, out, errOut := runTool(t, "", append(args, "--", "tok")...)
			require.Equal(t, 0, code, "stderr: %s", errOut)
			assert.Contains(t, out, "verdict: accepted")
			assert.Contains(t, out, "(private_key_jwt)")
			assert.Equal(t, tc.want, as.lastKid(t))
		})
	}
}

// TestFileFlagBounds shows the bounds of -client-secret-file (64 KiB) and
// -private-key-file (1 MiB): a file of exactly the bound is used, one a
// byte larger is refused with an error that names the flag and the bound.
func TestFileFlagBounds(t *testing.T) {
	key := ecKeyPEM(t)
	for _, tc := range []struct {
		flag  string
		bound int
		data  func(size int) []byte
	}{
		{"-client-secret-file", secretFileBound, func(size int) []byte { return bytes.Repeat([]byte("s"), size) }},
		{"-private-key-file", keyFileBound, func(size int) []byte {
			// Text before the PEM block is skipped.
			return append(append(bytes.Repeat([]byte("x"), size-len(key)-1), '\n'), key...)
		}},
	} {
		t.Run(tc.flag+" at the bound", func(t *testing.T) {
			newAcceptingServer(t)
			code, out, errOut := runTool(t, "", tc.flag, writeFile(t, "f", tc.data(tc.bound)), "--", "tok")
			assert.Equal(t, 0, code, "stderr: %.300s", errOut)
			assert.Contains(t, out, "verdict: accepted")
		})
		t.Run(tc.flag+" past the bound", func(t *testing.T) {
			newAcceptingServer(t)
			code, out, errOut := runTool(t, "", tc.flag, writeFile(t, "f", tc.data(tc.bound+1)), "--", "tok")
			assert.Equal(t, 2, code)
			assert.Empty(t, out)
			assert.Equal(t, "introspect: "+tc.flag+": the file is larger than "+
				map[int]string{secretFileBound: "65536", keyFileBound: "1048576"}[tc.bound]+" bytes\n", errOut)
		})
	}
}

// TestFileFlagErrorsNameTheFlag shows that an error about a file a flag
// names says the flag, never the environment variable it stands in for.
func TestFileFlagErrorsNameTheFlag(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	empty := writeFile(t, "empty", []byte("\n"))
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"missing secret file", []string{"-client-secret-file", missing}, "introspect: -client-secret-file: open " + missing},
		{"empty secret file", []string{"-client-secret-file", empty}, "introspect: -client-secret-file names a file that holds no secret"},
		{"missing key file", []string{"-private-key-file", missing}, "introspect: -private-key-file: open " + missing},
		{"missing certificate file", []string{"-tls-cert-file", missing, "-tls-key-file", empty}, "introspect: -tls-cert-file: open " + missing},
		{"missing certificate key file", []string{"-tls-cert-file", empty, "-tls-key-file", missing}, "introspect: -tls-key-file: open " + missing},
	} {
		t.Run(tc.name, func(t *testing.T) {
			withServer(t)
			code, out, errOut := runTool(t, "", append(tc.args, "--", "tok")...)
			assert.Equal(t, 2, code)
			assert.Empty(t, out)
			assert.True(t, strings.HasPrefix(errOut, tc.wantErr), "%q does not begin with %q", errOut, tc.wantErr)
			assert.NotContains(t, errOut, "INTROSPECTION_")
		})
	}
}

// TestIssuerHelpSaysWhenDiscoveryHappens checks the -issuer help: the
// endpoint is discovered when neither -url nor $INTROSPECTION_URL is set.
func TestIssuerHelpSaysWhenDiscoveryHappens(t *testing.T) {
	_, _, errOut := runTool(t, "", "-h")
	assert.Contains(t, errOut, "when neither -url nor $INTROSPECTION_URL is set")
}
