//go:build unix

package fds

import (
	"net"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// TestRawGivesTheDescriptors: the descriptors themselves, in order, for
// listeners and files alike: each names its own socket or file, and none
// is a copy (no descriptor was opened).
func TestRawGivesTheDescriptors(t *testing.T) {
	conns, ports := listeners(t, 3)
	f, err := os.Open(os.DevNull)
	require.NoError(t, err)
	defer f.Close()
	conns = append(conns, f)
	open := countFDs(t)

	got, err := Raw(conns)
	require.NoError(t, err)
	assert.Equal(t, open, countFDs(t), "no copies")
	require.Len(t, got, len(conns))
	for i, port := range ports {
		sa, err := unix.Getsockname(got[i])
		require.NoError(t, err)
		assert.Equal(t, port, sa.(*unix.SockaddrInet4).Port, "descriptor %d is listener %d", got[i], i)
	}
	assert.Equal(t, int(f.Fd()), got[len(ports)])
	assert.NoError(t, Open(conns))
}

// countFDs counts this process's open descriptors; -1 where there is no
// /proc to count them in.
func countFDs(t *testing.T) int {
	t.Helper()
	if runtime.GOOS != "linux" {
		return -1
	}
	ents, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	return len(ents)
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

// TestPinHoldsThemOpen: Pin gives f the descriptors themselves, in order;
// a conn closed while f runs (from elsewhere: Close waits for f) keeps its
// descriptor, naming its socket, until f returns; one closed before is named by a ClosedError, and f
// does not run.
func TestPinHoldsThemOpen(t *testing.T) {
	conns, ports := listeners(t, 3)
	want, err := Raw(conns)
	require.NoError(t, err)
	open := countFDs(t)

	var pinned []int
	closed := make(chan error)
	err = Pin(conns, func(fds []int) error {
		pinned = append(pinned, fds...)
		// Close returns once f has: the descriptor stays meanwhile.
		go func() { closed <- conns[1].(net.Listener).Close() }()
		time.Sleep(20 * time.Millisecond)
		for i, port := range ports {
			sa, err := unix.Getsockname(fds[i])
			require.NoError(t, err, "descriptor %d of listener %d", fds[i], i)
			assert.Equal(t, port, sa.(*unix.SockaddrInet4).Port, "descriptor %d is listener %d", fds[i], i)
		}
		assert.Equal(t, open, countFDs(t), "no copies, and the closed one still open")
		return nil
	})
	require.NoError(t, err)
	require.NoError(t, <-closed)
	assert.Equal(t, want, pinned)
	_, err = unix.Getsockname(want[1])
	assert.Error(t, err, "closed once f returned")

	ran := false
	err = Pin(conns, func([]int) error { ran = true; return nil })
	var ce *ClosedError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, 1, ce.Index)
	assert.False(t, ran)
	assert.ErrorIs(t, Pin(conns[2:], func([]int) error { return os.ErrInvalid }), os.ErrInvalid, "f's error")
}

// listeners returns n TCP listeners on loopback, closed at the end of the
// test, and their ports.
func listeners(t *testing.T, n int) ([]syscall.Conn, []int) {
	var conns []syscall.Conn
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		t.Cleanup(func() { ln.Close() })
		conns = append(conns, ln.(*net.TCPListener))
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return conns, ports
}
