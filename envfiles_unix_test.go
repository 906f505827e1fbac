//go:build unix

package introspection

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSettingsFromEnvReadsSecretsFromPipes shows that the bounded reads
// still take a named pipe, as a shell's <(...) gives: SettingsFromEnv
// reads CLIENT_SECRET_FILE and PRIVATE_KEY_FILE from FIFOs to their end.
func TestSettingsFromEnvReadsSecretsFromPipes(t *testing.T) {
	dir := t.TempDir()
	fifo := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		require.NoError(t, syscall.Mkfifo(p, 0o600))
		done := make(chan struct{})
		go func() {
			defer close(done)
			f, err := os.OpenFile(p, os.O_WRONLY, 0)
			if err != nil {
				return
			}
			defer f.Close()
			_, _ = f.Write(data)
		}()
		t.Cleanup(func() {
			// Unblock the writer if the FIFO was never opened.
			if r, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0); err == nil {
				_ = r.Close()
			}
			<-done
		})
		return p
	}
	clearEnv(t, "INTROSPECTION_")
	t.Setenv("INTROSPECTION_CLIENT_SECRET_FILE", fifo("secret", []byte("s3cret\n")))
	t.Setenv("INTROSPECTION_PRIVATE_KEY_FILE", fifo("key", pkcs8PEM(t, testECKey())))
	s, err := SettingsFromEnv("")
	require.NoError(t, err)
	assert.Equal(t, "s3cret", s.ClientSecret)
	require.NotNil(t, s.PrivateKey)
	assert.True(t, testECKey().Equal(s.PrivateKey.Key))
}
