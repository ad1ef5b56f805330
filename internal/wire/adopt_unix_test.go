//go:build unix

package wire

import (
	"bytes"
	"encoding/gob"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestTableflipNamesLate: a tableflip parent's names pipe is non-blocking
// (Go makes its pipes so) and the names arrive after the child has
// started, in pieces: the reader waits for them.
func TestTableflipNamesLate(t *testing.T) {
	r, w, err := os.Pipe() // non-blocking, as tableflip's
	require.NoError(t, err)
	defer r.Close()
	var fd int
	rc, err := r.SyscallConn()
	require.NoError(t, err)
	require.NoError(t, rc.Control(func(f uintptr) { fd = int(f) }))
	var b bytes.Buffer
	require.NoError(t, gob.NewEncoder(&b).Encode([][]string{{"listener", "tcp", "127.0.0.1:8080"}}))
	go func() {
		for _, c := range bytes.SplitAfter(b.Bytes(), b.Bytes()[:1]) { // several writes
			time.Sleep(20 * time.Millisecond)
			w.Write(c)
		}
	}()
	names, err := readTableflipNames(fdReader(fd))
	require.NoError(t, err)
	assert.Equal(t, []string{"tcp/127.0.0.1%3A8080"}, names)
	w.Close()
}
