package introspection

import (
	"bytes"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// padTo returns data preceded by a line of filler, size bytes in all;
// PEM decoders skip such text before the first block.
func padTo(t *testing.T, data []byte, size int) []byte {
	t.Helper()
	require.Less(t, len(data)+1, size)
	filler := bytes.Repeat([]byte("x"), size-len(data)-1)
	return append(append(filler, '\n'), data...)
}

// TestSettingsFromEnvFileBounds shows the bound of each file
// SettingsFromEnv reads: a file of exactly the bound is read and used, a
// file one byte larger is refused with an error that names the variable
// and the bound.
func TestSettingsFromEnvFileBounds(t *testing.T) {
	cert := selfSignedCertificate(t, "rs")
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]})
	certKeyPEM := pkcs8PEM(t, cert.PrivateKey)
	keyPEM := pkcs8PEM(t, testECKey())
	for _, tc := range []struct {
		variable string
		bound    int
		env      func(t *testing.T, size int) map[string]string
		check    func(t *testing.T, s Settings, size int)
	}{
		{"CLIENT_SECRET_FILE", maxClientSecretFileSize,
			func(t *testing.T, size int) map[string]string {
				return map[string]string{"CLIENT_SECRET_FILE": tempFile(t, "secret", bytes.Repeat([]byte("s"), size))}
			},
			func(t *testing.T, s Settings, size int) { assert.Len(t, s.ClientSecret, size) }},
		{"PRIVATE_KEY_FILE", maxSigningKeyInput,
			func(t *testing.T, size int) map[string]string {
				return map[string]string{"PRIVATE_KEY_FILE": tempFile(t, "key.pem", padTo(t, keyPEM, size))}
			},
			func(t *testing.T, s Settings, _ int) {
				require.NotNil(t, s.PrivateKey)
				assert.True(t, testECKey().Equal(s.PrivateKey.Key))
			}},
		{"TLS_CERT_FILE", maxCertificateFileSize,
			func(t *testing.T, size int) map[string]string {
				return map[string]string{
					"TLS_CERT_FILE": tempFile(t, "cert.pem", padTo(t, certPEM, size)),
					"TLS_KEY_FILE":  tempFile(t, "key.pem", certKeyPEM),
				}
			},
			func(t *testing.T, s Settings, _ int) {
				require.NotNil(t, s.TLSClientCertificate)
				assert.Equal(t, cert.Certificate, s.TLSClientCertificate.Certificate)
			}},
		{"TLS_KEY_FILE", maxCertificateFileSize,
			func(t *testing.T, size int) map[string]string {
				return map[string]string{
					"TLS_CERT_FILE": tempFile(t, "cert.pem", certPEM),
					"TLS_KEY_FILE":  tempFile(t, "key.pem", padTo(t, certKeyPEM, size)),
				}
			},
			func(t *testing.T, s Settings, _ int) { require.NotNil(t, s.TLSClientCertificate) }},
	} {
		run := func(t *testing.T, size int) (Settings, error) {
			clearEnv(t, "INTROSPECTION_")
			for k, v := range tc.env(t, size) {
				t.Setenv("INTROSPECTION_"+k, v)
			}
			return SettingsFromEnv("")
		}
		t.Run(tc.variable+" at the bound", func(t *testing.T) {
			s, err := run(t, tc.bound)
			require.NoError(t, err)
			tc.check(t, s, tc.bound)
		})
		t.Run(tc.variable+" past the bound", func(t *testing.T) {
			_, err := run(t, tc.bound+1)
			require.Error(t, err)
			assert.Equal(t, "introspection: INTROSPECTION_"+tc.variable+": the file is larger than "+strconv.Itoa(tc.bound)+" bytes", err.Error())
		})
	}
}

// TestSettingsFromEnvTLSFileErrors shows the errors of TLS_CERT_FILE and
// TLS_KEY_FILE: a file that cannot be read names its variable and says
// why, as the file system does; files that are not a certificate and its
// key get one fixed description that never shows what they hold, not
// even the types of their PEM blocks, which tls.X509KeyPair's errors
// quote.
func TestSettingsFromEnvTLSFileErrors(t *testing.T) {
	const marker = "CONTENT-OF-THE-FILE-4b1d"
	cert := selfSignedCertificate(t, "rs")
	other := selfSignedCertificate(t, "other")
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]})
	certFile := tempFile(t, "cert.pem", certPEM)
	keyFile := tempFile(t, "key.pem", pkcs8PEM(t, cert.PrivateKey))
	missing := filepath.Join(t.TempDir(), "missing.pem")
	for _, tc := range []struct {
		name        string
		cert, key   string
		wantErr     string
		wantMissing bool
	}{
		{"certificate file missing", missing, keyFile, "introspection: INTROSPECTION_TLS_CERT_FILE: open " + missing, true},
		{"key file missing", certFile, missing, "introspection: INTROSPECTION_TLS_KEY_FILE: open " + missing, true},
		{"certificate file is a directory", t.TempDir(), keyFile, "introspection: INTROSPECTION_TLS_CERT_FILE: read ", false},
		{"key file holds a marker block", certFile, tempFile(t, "k", []byte("-----BEGIN "+marker+"-----\nAAAA\n-----END "+marker+"-----\n")),
			"introspection: INTROSPECTION_TLS_CERT_FILE and INTROSPECTION_TLS_KEY_FILE: not a PEM certificate and its private key", false},
		{"key file holds the certificate", certFile, certFile,
			"introspection: INTROSPECTION_TLS_CERT_FILE and INTROSPECTION_TLS_KEY_FILE: not a PEM certificate and its private key", false},
		{"key of another certificate", certFile, tempFile(t, "other.pem", pkcs8PEM(t, other.PrivateKey)),
			"introspection: INTROSPECTION_TLS_CERT_FILE and INTROSPECTION_TLS_KEY_FILE: not a PEM certificate and its private key", false},
		{"certificate file holds text", tempFile(t, "c", []byte(marker)), keyFile,
			"introspection: INTROSPECTION_TLS_CERT_FILE and INTROSPECTION_TLS_KEY_FILE: not a PEM certificate and its private key", false},
		{"certificate file holds marker blocks", tempFile(t, "cert-blocks.pem", []byte(
			"-----BEGIN "+marker+"-----\nAAAA\n-----END "+marker+"-----\n"+
				"-----BEGIN OTHER-----\nAAAA\n-----END OTHER-----\n")), keyFile,
			"introspection: INTROSPECTION_TLS_CERT_FILE and INTROSPECTION_TLS_KEY_FILE: not a PEM certificate and its private key", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clearEnv(t, "INTROSPECTION_")
			t.Setenv("INTROSPECTION_TLS_CERT_FILE", tc.cert)
			t.Setenv("INTROSPECTION_TLS_KEY_FILE", tc.key)
			_, err := SettingsFromEnv("")
			require.Error(t, err)
			assert.True(t, strings.HasPrefix(err.Error(), tc.wantErr), "%q does not begin with %q", err.Error(), tc.wantErr)
			assert.Equal(t, tc.wantMissing, errors.Is(err, os.ErrNotExist))
			assert.NotContains(t, err.Error(), marker)
			assert.NotContains(t, err.Error(), "BEGIN")
		})
	}
}

// TestSettingsFromEnvPrivateKeyFileErrorsNeverShowWhatTheFileHolds shows
// that an unusable PRIVATE_KEY_FILE gives an error that names the
// variable and quotes nothing of the file, however long: not a JWK's
// "kty" or "crv", nor a PEM block's type.
func TestSettingsFromEnvPrivateKeyFileErrorsNeverShowWhatTheFileHolds(t *testing.T) {
	const marker = "CONTENT-OF-THE-FILE-4b1d"
	long := marker + strings.Repeat("x", 64<<10)
	for _, tc := range []struct {
		name string
		data string
	}{
		{"JWK kty", `{"kty":"` + long + `","d":"AQAB"}`},
		{"JWK crv", `{"kty":"EC","crv":"` + long + `","d":"AQAB"}`},
		{"PEM block type", "-----BEGIN " + marker + " PRIVATE KEY-----\nAAAA\n-----END " + marker + " PRIVATE KEY-----\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clearEnv(t, "INTROSPECTION_")
			t.Setenv("INTROSPECTION_PRIVATE_KEY_FILE", tempFile(t, "key", []byte(tc.data)))
			_, err := SettingsFromEnv("")
			require.Error(t, err)
			msg := err.Error()
			assert.Contains(t, msg[:min(len(msg), 128)], "INTROSPECTION_PRIVATE_KEY_FILE", "precondition: the error names the variable")
			assert.Falsef(t, strings.Contains(msg, marker), "the error shows what the key file holds: %.160s", msg)
			assert.Lessf(t, len(msg), 1024, "the error, %d bytes long, repeats the file's text however long", len(msg))
		})
	}
}
