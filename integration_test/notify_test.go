//go:build linux

package integration_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/handoff-go/handoff/internal/harness"
	"github.com/handoff-go/handoff/readiness"
)

// notice is one datagram a fake systemd received, with its sender as the
// kernel reported it.
type notice struct {
	pid   int
	lines []string
}

func (n notice) String() string { return fmt.Sprintf("pid %d: %q", n.pid, n.lines) }

// fakeSystemd receives sd_notify datagrams the way systemd does (sender
// PID from SCM_CREDENTIALS), keeping watchdog pings apart.
type fakeSystemd struct {
	r       *readiness.Receiver
	path    string // its NOTIFY_SOCKET
	notices chan notice
	mu      sync.Mutex
	pings   []notice // WATCHDOG=1 datagrams, in order
}

func startFakeSystemd(t *testing.T) *fakeSystemd {
	path := filepath.Join(t.TempDir(), "notify")
	r, err := readiness.Listen(path)
	require.NoError(t, err)
	f := &fakeSystemd{r: r, path: path, notices: make(chan notice, 64)}
	go func() {
		for {
			n, err := r.Receive(context.Background())
			if err != nil {
				close(f.notices)
				return
			}
			nt := notice{pid: n.PID, lines: n.Lines}
			if len(n.Lines) == 1 && n.Lines[0] == "WATCHDOG=1" {
				f.mu.Lock()
				f.pings = append(f.pings, nt)
				f.mu.Unlock()
				continue
			}
			f.notices <- nt
		}
	}()
	t.Cleanup(func() { r.Close() })
	return f
}

// next returns the next datagram other than a watchdog ping.
func (f *fakeSystemd) next(t *testing.T) notice {
	t.Helper()
	select {
	case n := <-f.notices:
		return n
	case <-time.After(30 * time.Second):
		t.Fatal("no notification within 30s")
		return notice{}
	}
}

// none asserts no datagram other than pings arrives for a while.
func (f *fakeSystemd) none(t *testing.T) {
	t.Helper()
	select {
	case n := <-f.notices:
		t.Errorf("unexpected notification %v", n)
	case <-time.After(300 * time.Millisecond):
	}
}

// pingers returns the senders of the watchdog pings so far, in order,
// with repeats collapsed.
func (f *fakeSystemd) pingers() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	var pids []int
	for _, p := range f.pings {
		if len(pids) == 0 || pids[len(pids)-1] != p.pid {
			pids = append(pids, p.pid)
		}
	}
	return pids
}

// TestSystemdNotify runs httpserver with NOTIFY_SOCKET and WATCHDOG_USEC
// set, as systemd would start a Type=notify service, and checks every
// datagram of a start, an upgrade, a failed upgrade and a stop: content,
// order and sender.
func TestSystemdNotify(t *testing.T) {
	sd := startFakeSystemd(t)
	t.Setenv("NOTIFY_SOCKET", sd.path)
	t.Setenv("WATCHDOG_USEC", "200000") // pings every 100ms
	s := startServer(t, bins.v1, "")
	p1, err := s.WaitPID(t.Context(), 0)
	require.NoError(t, err)

	n := sd.next(t)
	assert.Equal(t, notice{p1, []string{"READY=1", fmt.Sprintf("STATUS=serving: generation 1, pid %d", p1)}}, n)
	time.Sleep(350 * time.Millisecond) // a few pings

	p2, _ := s.upgrade(bins.v2, syscall.SIGHUP)
	n = sd.next(t)
	require.Equal(t, p1, n.pid, "%v", n)
	require.Len(t, n.lines, 3, "%v", n)
	assert.Equal(t, "RELOADING=1", n.lines[0])
	assert.Regexp(t, `^MONOTONIC_USEC=[1-9][0-9]*$`, n.lines[1])
	assert.Equal(t, "STATUS=upgrading: starting generation 2", n.lines[2])
	n = sd.next(t)
	assert.Equal(t, notice{p1, []string{fmt.Sprintf("MAINPID=%d", p2), "READY=1",
		fmt.Sprintf("STATUS=serving: generation 2, pid %d (upgraded from pid %d)", p2, p1)}}, n)
	s.requireAnswer("v2", p2)
	time.Sleep(350 * time.Millisecond)

	// A build that reports a failure: the old generation says why and that
	// it is ready again; the failed child says nothing.
	require.NoError(t, installAndSignal(s, bins.failed, syscall.SIGHUP))
	n = sd.next(t)
	require.Equal(t, p2, n.pid, "%v", n)
	assert.Equal(t, "RELOADING=1", n.lines[0])
	assert.Equal(t, "STATUS=upgrading: starting generation 3", n.lines[len(n.lines)-1])
	n = sd.next(t)
	require.Equal(t, p2, n.pid, "%v", n)
	require.Len(t, n.lines, 2, "%v", n)
	assert.Equal(t, "READY=1", n.lines[0])
	assert.True(t, strings.HasPrefix(n.lines[1], "STATUS=upgrade failed: new generation (PID "), n.lines[1])
	assert.Contains(t, n.lines[1], "failed: config: listen address missing")
	s.requireAnswer("v2", p2)

	require.NoError(t, syscall.Kill(p2, syscall.SIGTERM))
	n = sd.next(t)
	assert.Equal(t, notice{p2, []string{"STOPPING=1", fmt.Sprintf("STATUS=stopping: draining generation 2, pid %d", p2)}}, n)
	sd.none(t)

	// Pings came from the main process only: the first generation until
	// it handed over, then the second.
	assert.Equal(t, []int{p1, p2}, sd.pingers())
}

// installAndSignal replaces the server's binary with bin and signals the
// live process, without waiting for an outcome.
func installAndSignal(s *server, bin string, sig syscall.Signal) error {
	if err := harness.Install(bin, s.bin); err != nil {
		return err
	}
	pid, err := s.WaitPID(context.Background(), 0)
	if err != nil {
		return err
	}
	return syscall.Kill(pid, sig)
}
