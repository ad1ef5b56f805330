package fdpass

import (
	"fmt"
	"net"
	"os"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// TestMarkInherited: every descriptor of the range is marked close-on-exec,
// and one that is not open is named, in both ways of doing it.
func TestMarkInherited(t *testing.T) {
	for name, mark := range map[string]func(int, int) (int, error){"F_DUPFD+close_range": markInherited, "fcntl each": markEach} {
		t.Run(name, func(t *testing.T) {
			var p [2]int
			require.NoError(t, unix.Pipe(p[:]))
			defer unix.Close(p[0])
			defer unix.Close(p[1])
			const first, n = 900, 4
			for i := range n {
				require.NoError(t, unix.Dup3(p[i%2], first+i, 0)) // without close-on-exec
				defer unix.Close(first + i)
			}
			bad, err := mark(first, n)
			require.NoError(t, err)
			assert.Equal(t, -1, bad)
			for i := range n {
				flags, err := unix.FcntlInt(uintptr(first+i), unix.F_GETFD, 0)
				require.NoError(t, err)
				assert.Equal(t, unix.FD_CLOEXEC, flags&unix.FD_CLOEXEC, "descriptor %d", first+i)
			}
			// An O_PATH descriptor is open (poll would not see it).
			path, err := unix.Open("/tmp", unix.O_PATH|unix.O_CLOEXEC, 0)
			require.NoError(t, err)
			require.NoError(t, unix.Dup3(path, first+1, 0))
			unix.Close(path)
			bad, err = mark(first, n)
			require.NoError(t, err)
			assert.Equal(t, -1, bad, "O_PATH is open")
			unix.Close(first + 2)
			bad, err = mark(first, n)
			assert.Equal(t, 2, bad, "the one not open")
			assert.ErrorIs(t, err, unix.EBADF)
			unix.Close(first)
			bad, err = mark(first, n)
			assert.Equal(t, 0, bad, "the first not open")
			assert.ErrorIs(t, err, unix.EBADF)
		})
	}
}

// TestMarkInheritedFast: with every descriptor open, markInherited proves
// it without the fallback of one fcntl each; with one missing it falls
// back, which names it.
func TestMarkInheritedFast(t *testing.T) {
	slow := 0
	markSlow = func(first, n int) (int, error) { slow++; return markEach(first, n) }
	defer func() { markSlow = markEach }()
	var p [2]int
	require.NoError(t, unix.Pipe2(p[:], unix.O_CLOEXEC))
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	const first, n = 950, 8
	for i := range n {
		require.NoError(t, unix.Dup3(p[0], first+i, 0))
	}
	defer func() {
		for i := range n {
			unix.Close(first + i)
		}
	}()
	bad, err := markInherited(first, n)
	require.NoError(t, err)
	assert.Equal(t, -1, bad)
	assert.Zero(t, slow, "proved without the fallback")
	unix.Close(first + 5)
	bad, _ = markInherited(first, n)
	assert.Equal(t, 5, bad)
	assert.Equal(t, 1, slow, "the missing one is named by the fallback")
}

// rawListener returns a non-blocking TCP socket listening on a port of
// 127.0.0.1, as a parent hands one over, and its port.
func rawListener(t *testing.T) (fd, port int) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	require.NoError(t, unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}))
	require.NoError(t, unix.Listen(fd, 16))
	sa, err := unix.Getsockname(fd)
	require.NoError(t, err)
	return fd, sa.(*unix.SockaddrInet4).Port
}

// TestCarrierHoldsNothing: a socket adopted through the carrier is held by
// the listener alone (closed, it refuses connections), and the carrier
// points at /dev/null between adoptions and is closed with the unclaimed.
func TestCarrierHoldsNothing(t *testing.T) {
	fd, port := rawListener(t)
	e := &entry{name: "web", fd: fd}
	in := &Inherited{files: []*entry{e}, byName: map[string][]*entry{"web": {e}}}

	ln, err := in.Listener("web", "tcp")
	require.NoError(t, err)
	require.Len(t, in.carry.Idle(), 1, "adopted through a carrier")
	carrierFD := in.carry.Idle()[0]
	target, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", carrierFD))
	require.NoError(t, err)
	assert.Equal(t, os.DevNull, target, "the carrier points at /dev/null again")
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	require.NoError(t, err, "the adopted listener listens")
	c.Close()

	require.NoError(t, ln.Close())
	_, err = net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	assert.ErrorIs(t, err, unix.ECONNREFUSED, "nothing else holds the socket")
	in.CloseUnclaimed()
	_, err = unix.FcntlInt(uintptr(carrierFD), unix.F_GETFD, 0)
	assert.ErrorIs(t, err, unix.EBADF, "the carrier is closed with the unclaimed")
}

// TestCarriersConcurrent: sockets taken from several goroutines at once
// are each adopted through a carrier of its own, every one listens, and
// afterwards no carrier holds a socket and CloseUnclaimed closes them all.
func TestCarriersConcurrent(t *testing.T) {
	const n, workers = 64, 4
	in := &Inherited{byName: map[string][]*entry{}}
	ports := make([]int, n)
	for i := range n {
		fd, port := rawListener(t)
		ports[i] = port
		e := &entry{name: fmt.Sprint("web", i), fd: fd}
		in.files = append(in.files, e)
		in.byName[e.name] = []*entry{e}
	}
	lns := make([]net.Listener, n)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				ln, err := in.Listener(fmt.Sprint("web", i), "tcp")
				lns[i] = ln
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	carriers := in.carry.Idle()
	require.NotEmpty(t, carriers)
	assert.LessOrEqual(t, len(carriers), workers, "a carrier per adoption at once, at most")
	for _, c := range carriers {
		target, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", c))
		require.NoError(t, err)
		assert.Equal(t, os.DevNull, target, "the carrier points at /dev/null again")
	}
	for i, ln := range lns {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", ports[i]))
		require.NoError(t, err, "listener %d listens", i)
		c.Close()
		require.NoError(t, ln.Close())
	}
	in.CloseUnclaimed()
	for _, c := range carriers {
		_, err := unix.FcntlInt(uintptr(c), unix.F_GETFD, 0)
		assert.ErrorIs(t, err, unix.EBADF, "the carrier is closed with the unclaimed")
	}
}
