//go:build unix

package upgrade

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// TestOpenRead: the program file is opened close-on-exec (a child started
// meanwhile by another goroutine must not inherit it), reads, and a missing
// path is a *PathError naming it, as os.Open's is. That the poller is not
// asked is seen in system calls only (BenchmarkPrepare under strace).
func TestOpenRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "prog")
	require.NoError(t, os.WriteFile(path, []byte("\x7fELF"), 0o755))
	f, err := openRead(path)
	require.NoError(t, err)
	defer f.Close()
	assert.Equal(t, path, f.Name())
	flags, err := unix.FcntlInt(f.Fd(), unix.F_GETFD, 0)
	require.NoError(t, err)
	assert.NotZero(t, flags&unix.FD_CLOEXEC, "not close-on-exec")
	b := make([]byte, 4)
	n, err := f.ReadAt(b, 0)
	require.NoError(t, err)
	assert.Equal(t, "\x7fELF", string(b[:n]))

	_, err = openRead(path + ".missing")
	var pe *fs.PathError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, path+".missing", pe.Path)
	assert.ErrorIs(t, err, fs.ErrNotExist)
}
