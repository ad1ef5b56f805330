//go:build unix

package fds

import (
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// fdOf returns the descriptor behind c, for comparison.
func fdOf(t *testing.T, c syscall.Conn) int {
	t.Helper()
	rc, err := c.SyscallConn()
	require.NoError(t, err)
	fd := -1
	require.NoError(t, rc.Control(func(u uintptr) { fd = int(u) }))
	return fd
}

// TestRawGivesTheDescriptors: the descriptors themselves, in order, for
// listeners and files alike.
func TestRawGivesTheDescriptors(t *testing.T) {
	var conns []syscall.Conn
	var want []int
	for range 3 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer ln.Close()
		conns = append(conns, ln.(*net.TCPListener))
		want = append(want, fdOf(t, ln.(*net.TCPListener)))
	}
	f, err := os.Open(os.DevNull)
	require.NoError(t, err)
	defer f.Close()
	conns = append(conns, f)
	want = append(want, int(f.Fd()))

	got, err := Raw(conns)
	require.NoError(t, err)
	assert.Equal(t, want, got)
	assert.NoError(t, Open(conns))
}

// TestOpenSeesAClose: a conn closed after Raw gave its descriptor is
// reported by Open, naming it; one closed before, by Raw.
func TestOpenSeesAClose(t *testing.T) {
	a, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer a.Close()
	b, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	conns := []syscall.Conn{a.(*net.TCPListener), b.(*net.TCPListener)}
	_, err = Raw(conns)
	require.NoError(t, err)
	b.Close()

	var ce *ClosedError
	err = Open(conns)
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, 1, ce.Index)
	assert.ErrorIs(t, err, net.ErrClosed)

	_, err = Raw(conns)
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, 1, ce.Index)
}

// BenchmarkStart starts /bin/true with 1000 listeners as its files, each
// duplicated for it (Dup) or as it is (Raw, then Open); the wait for it is
// not timed.
func BenchmarkStart(b *testing.B) {
	const n = 1000
	var conns []syscall.Conn
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(b, err)
		defer ln.Close()
		conns = append(conns, ln.(*net.TCPListener))
	}
	// Grow the descriptor table first, as reserveFDs does in upgrade.
	if fd, err := unix.FcntlInt(0, unix.F_DUPFD_CLOEXEC, 3*n); err == nil {
		unix.Close(fd)
	}
	startWait := func(b *testing.B, files []uintptr) {
		pid, err := syscall.ForkExec("/bin/true", []string{"true"}, &syscall.ProcAttr{Files: files})
		require.NoError(b, err)
		b.StopTimer()
		var ws syscall.WaitStatus
		_, err = syscall.Wait4(pid, &ws, 0, nil)
		require.NoError(b, err)
		b.StartTimer()
	}
	b.Run("dup", func(b *testing.B) {
		for b.Loop() {
			files := []uintptr{0, 1, 2}
			var dups []int
			for _, c := range conns {
				fd, err := Dup(c)
				require.NoError(b, err)
				dups = append(dups, fd)
				files = append(files, uintptr(fd))
			}
			startWait(b, files)
			for _, fd := range dups {
				syscall.Close(fd)
			}
		}
	})
	b.Run("raw", func(b *testing.B) {
		for b.Loop() {
			raw, err := Raw(conns)
			require.NoError(b, err)
			files := []uintptr{0, 1, 2}
			for _, fd := range raw {
				files = append(files, uintptr(fd))
			}
			startWait(b, files)
			require.NoError(b, Open(conns))
		}
	})
}
