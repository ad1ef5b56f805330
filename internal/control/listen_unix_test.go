//go:build unix

package control

import (
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestListen: the control socket is 0600 whatever the umask, is made where
// nobody else can reach it before it has that mode, refuses to replace a
// path that exists, and leaves nothing else behind.
func TestListen(t *testing.T) {
	dir, err := os.MkdirTemp("", "ctl")
	require.NoError(t, err)
	defer os.RemoveAll(dir)
	old := syscall.Umask(0) // the widest mode a plain bind would give
	defer syscall.Umask(old)
	path := filepath.Join(dir, "app.sock")
	ln, err := Listen(path)
	require.NoError(t, err)
	defer ln.Close()
	fi, err := os.Lstat(path)
	require.NoError(t, err)
	assert.Equal(t, os.ModeSocket|0o600, fi.Mode()&(os.ModeType|os.ModePerm))
	c, err := net.Dial("unix", path)
	require.NoError(t, err, "the socket answers at its path")
	c.Close()
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, ents, 1, "nothing but the socket is left in %s", dir)

	_, err = Listen(path)
	require.ErrorIs(t, err, syscall.EADDRINUSE, "a path in use is not replaced")
	c, err = net.Dial("unix", path)
	require.NoError(t, err, "the first socket still answers")
	c.Close()

	ln.Close()
	_, err = os.Lstat(path)
	assert.NoError(t, err, "Close leaves the path to the caller")
}
