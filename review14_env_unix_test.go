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

// TestReview14PrivateKeyFileReadIsBounded shows that SettingsFromEnv reads
// PRIVATE_KEY_FILE whole before ParseSigningKey refuses more than 1 MiB:
// a FIFO (or /dev/zero, or a log file named by mistake) is read to its end,
// however far that is, and held in memory. The writer below offers 16 MiB;
// a bounded read takes at most maxSigningKeyInput+1 bytes and closes the
// file, so the writer is refused (EPIPE) after that and what the pipe
// buffers. ParseSigningKey's doc: "At most 1 MiB is read"; the brief:
// bodies and inputs are read through a size cap.
func TestReview14PrivateKeyFileReadIsBounded(t *testing.T) {
	const offered = 16 << 20
	fifo := filepath.Join(t.TempDir(), "key.fifo")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600))

	written := make(chan int, 1)
	go func() {
		f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			written <- 0
			return
		}
		defer f.Close()
		chunk := make([]byte, 64<<10)
		for i := range chunk {
			chunk[i] = 'A'
		}
		n := 0
		for n < offered {
			m, err := f.Write(chunk)
			n += m
			if err != nil {
				break
			}
		}
		written <- n
	}()
	t.Cleanup(func() {
		// Unblock the writer if SettingsFromEnv never opened the FIFO.
		if r, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0); err == nil {
			_ = r.Close()
		}
	})

	clearEnv(t, "INTROSPECTION_")
	t.Setenv("INTROSPECTION_PRIVATE_KEY_FILE", fifo)
	_, err := SettingsFromEnv("")
	require.Error(t, err)
	assert.False(t, errors.Is(err, os.ErrNotExist))
	n := <-written
	assert.Less(t, n, 4<<20, "SettingsFromEnv read %d bytes of PRIVATE_KEY_FILE; the bound is %d", n, maxSigningKeyInput)
}
