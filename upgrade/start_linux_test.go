package upgrade

import (
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// TestStartSizesChildTable: a process started with many files begins with
// a descriptor table that already fits what its reserveFDs probes for, so
// it does not grow the table (a stall of milliseconds in a multi-threaded
// process) just after it goes live.
func TestStartSizesChildTable(t *testing.T) {
	// Listeners until this process's highest descriptor is just under a
	// table boundary: a child forked now would get a table ending there,
	// too small for what it probes, unless start makes room.
	boundary := 256
	for boundary <= highestFD(t)+48 {
		boundary *= 2
	}
	var conns []syscall.Conn
	for highestFD(t) < boundary-48 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		t.Cleanup(func() { l.Close() })
		conns = append(conns, l.(*net.TCPListener))
	}
	n := len(conns)
	if reach(3+n, n) <= boundary {
		// The child's files are packed from 3, this process's are not:
		// with many descriptors open before the test, the child's
		// table would fit anyway, and the test would prove nothing.
		t.Skipf("this process had too many descriptors open (%d listeners reach %d, under the boundary %d)", n, reach(3+n, n), boundary)
	}
	null, err := os.Open(os.DevNull)
	require.NoError(t, err)
	defer null.Close()
	exe, err := os.Executable()
	require.NoError(t, err)
	attr := &syscall.ProcAttr{
		Env:   append(os.Environ(), envHelper+"=hang"),
		Files: make([]uintptr, 3+n),
	}
	attr.Files[0], attr.Files[1], attr.Files[2] = null.Fd(), null.Fd(), null.Fd()

	pid, err := start(exe, []string{exe}, attr, 3, conns)
	require.NoError(t, err)
	defer func() {
		unix.Kill(pid, unix.SIGKILL)
		var ws unix.WaitStatus
		unix.Wait4(pid, &ws, 0, nil)
	}()
	size := fdSize(t, pid)
	assert.Greater(t, size, reach(len(attr.Files), n), "the child's probe fits the table it started with")
}

// highestFD returns the highest descriptor open in this process.
func highestFD(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	highest := 0
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil {
			highest = max(highest, fd)
		}
	}
	return highest
}

// fdSize returns the number of slots in the descriptor table of process pid.
func fdSize(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	require.NoError(t, err)
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "FDSize:"); ok {
			size, err := strconv.Atoi(strings.TrimSpace(v))
			require.NoError(t, err)
			return size
		}
	}
	t.Fatal("no FDSize in /proc/PID/status")
	return 0
}
