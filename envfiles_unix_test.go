//go:build unix

package introspection

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// newFIFO makes the named pipe name in a temporary directory and has write
// fill it from a goroutine once a reader opens it. It returns the pipe's
// path and a channel closed when the goroutine ends; the test's cleanup
// unblocks a writer whose pipe was never opened, and waits for it.
func newFIFO(t *testing.T, name string, write func(*os.File)) (string, <-chan struct{}) {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, syscall.Mkfifo(p, 0o600))
	done := make(chan struct{})
	go func() {
		defer close(done)
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			return
		}
		defer f.Close()
		write(f)
	}()
	t.Cleanup(func() {
		if r, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0); err == nil {
			_ = r.Close()
		}
		<-done
	})
	return p, done
}

// TestSettingsFromEnvReadsSecretsFromPipes shows that the bounded reads
// still take a named pipe, as a shell's <(...) gives: SettingsFromEnv
// reads CLIENT_SECRET_FILE and PRIVATE_KEY_FILE from FIFOs to their end.
func TestSettingsFromEnvReadsSecretsFromPipes(t *testing.T) {
	fifo := func(name string, data []byte) string {
		p, _ := newFIFO(t, name, func(f *os.File) { _, _ = f.Write(data) })
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

// TestSettingsFromEnvStopsReadingAPipeAtTheBound shows that SettingsFromEnv
// reads no more of PRIVATE_KEY_FILE than its bound (maxSigningKeyInput)
// and one byte: a FIFO (or /dev/zero, or a log file named by mistake) that
// offers 16 MiB is refused, and its writer is refused (EPIPE) once the
// read took the bound and what the pipe buffers.
func TestSettingsFromEnvStopsReadingAPipeAtTheBound(t *testing.T) {
	const offered = 16 << 20
	written := 0
	fifo, done := newFIFO(t, "key.fifo", func(f *os.File) {
		chunk := make([]byte, 64<<10)
		for i := range chunk {
			chunk[i] = 'A'
		}
		for written < offered {
			m, err := f.Write(chunk)
			written += m
			if err != nil {
				break
			}
		}
	})
	clearEnv(t, "INTROSPECTION_")
	t.Setenv("INTROSPECTION_PRIVATE_KEY_FILE", fifo)
	_, err := SettingsFromEnv("")
	require.Error(t, err)
	assert.False(t, errors.Is(err, os.ErrNotExist))
	<-done
	assert.Less(t, written, 4<<20, "SettingsFromEnv read %d bytes of PRIVATE_KEY_FILE; the bound is %d", written, maxSigningKeyInput)
}
