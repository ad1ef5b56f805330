//go:build linux

package fdpass

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func init() {
	helpers["nonblock"] = helper{run: helperNonblock, adopts: true}
}

// fdinfoFlags returns the file status flags of fd as the kernel reports
// them in /proc/self/fdinfo: those of the open file description, shared
// by every process holding a descriptor for it.
func fdinfoFlags(fd int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/self/fdinfo/%d", fd))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "flags:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32)
			return int(n), err
		}
	}
	return 0, fmt.Errorf("no flags line in fdinfo of fd %d", fd)
}

func nonblocking(flags int) bool { return flags&unix.O_NONBLOCK != 0 }

// helperNonblock reports whether fd 3 is non-blocking as inherited, waits
// for a line on stdin, then adopts it and reports again.
func helperNonblock() int {
	flags, err := fdinfoFlags(firstFD) // before Inherit: fd 3 is the only one passed
	put("pre", "%v%s", nonblocking(flags), errSuffix(err))
	startWatchdog("nonblock")
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		put("stdin", "%v", err)
		return 1
	}
	in, err := Inherit()
	if err != nil {
		put("inherit", "%s", describe(err))
		return 1
	}
	ln, err := in.Listener("web", "tcp")
	if err != nil {
		put("listener", "%s", describe(err))
		return 1
	}
	defer ln.Close()
	rc, err := ln.(*net.TCPListener).SyscallConn()
	if err != nil {
		put("post", "error: %v", err)
		return 1
	}
	rc.Control(func(fd uintptr) {
		flags, err = fdinfoFlags(int(fd))
	})
	put("post", "%v%s", nonblocking(flags), errSuffix(err))
	return 0
}

// TestNonblockTrap checks that handing a listener over with Start leaves
// the parent's listener non-blocking, and that the test would notice if
// it did not: (*net.TCPListener).File in ExtraFiles switches the shared
// open file description to blocking mode.
func TestNonblockTrap(t *testing.T) {
	tests := []struct {
		name  string
		start func(t *testing.T, cmd *exec.Cmd, ln *net.TCPListener) error
		// whether the description is non-blocking while the child runs
		nonblock bool
	}{
		{"Start", func(t *testing.T, cmd *exec.Cmd, ln *net.TCPListener) error {
			return Start(cmd, Named{"web", ln})
		}, true},
		{"TCPListener.File", func(t *testing.T, cmd *exec.Cmd, ln *net.TCPListener) error {
			f, err := ln.File()
			require.NoError(t, err)
			defer f.Close()
			cmd.ExtraFiles = []*os.File{f}
			cmd.Env = append(cmd.Env, envListenFDs+"=1", envListenFDNames+"=web")
			return cmd.Start()
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			defer l.Close()
			ln := l.(*net.TCPListener)
			orig := sysfd(t, ln)
			// Whatever happens, give the listener back its mode.
			defer unix.SetNonblock(orig, true)
			flags, err := fdinfoFlags(orig)
			require.NoError(t, err)
			require.True(t, nonblocking(flags), "a Go listener starts non-blocking")

			cmd := helperCmd(t, "nonblock")
			stdin, err := cmd.StdinPipe()
			require.NoError(t, err)
			stdout, err := cmd.StdoutPipe()
			require.NoError(t, err)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			require.NoError(t, tt.start(t, cmd, ln))
			defer cmd.Wait()
			defer stdin.Close()

			// The child is running and holds the descriptor; it has
			// not adopted it yet (adopting makes it non-blocking).
			out := bufio.NewReader(stdout)
			k, pre := readChildLine(t, out)
			require.Equal(t, "pre", k)
			flags, err = fdinfoFlags(orig)
			require.NoError(t, err)
			assert.Equal(t, tt.nonblock, nonblocking(flags), "parent's listener non-blocking after the child started")
			assert.Equal(t, strconv.FormatBool(tt.nonblock), pre, "child's fd 3 non-blocking before adopting")

			require.NoError(t, unix.SetNonblock(orig, true))
			_, err = io.WriteString(stdin, "go\n")
			require.NoError(t, err)
			k, post := readChildLine(t, out)
			assert.Equal(t, "post", k)
			assert.Equal(t, "true", post, "child's listener non-blocking after adopting")
			require.NoError(t, cmd.Wait(), "stderr:\n%s", stderr.String())

			flags, err = fdinfoFlags(orig)
			require.NoError(t, err)
			assert.True(t, nonblocking(flags), "parent's listener non-blocking after the child exited")
		})
	}
}

// readChildLine reads one "key=value" line from a helper's stdout.
func readChildLine(t *testing.T, r *bufio.Reader) (key, value string) {
	t.Helper()
	line, err := r.ReadString('\n')
	require.NoError(t, err, "helper output ended early")
	key, value, _ = strings.Cut(strings.TrimSuffix(line, "\n"), "=")
	return key, value
}

func sysfd(t *testing.T, c syscall.Conn) int {
	t.Helper()
	rc, err := c.SyscallConn()
	require.NoError(t, err)
	fd := -1
	require.NoError(t, rc.Control(func(u uintptr) { fd = int(u) }))
	return fd
}
