//go:build linux

package integration_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/handoff-go/handoff/internal/harness"
	"github.com/handoff-go/handoff/internal/loadgen"
)

// load runs keep-alive and new-connection clients at s until stopped.
type load struct{ keep, fresh *loadgen.Load }

func startLoad(t *testing.T, addr string, clients int) *load {
	t.Helper()
	keep, err := loadgen.Start(loadgen.Config{Addr: addr, Clients: clients, Mode: loadgen.KeepAlive})
	require.NoError(t, err)
	fresh, err := loadgen.Start(loadgen.Config{Addr: addr, Clients: clients, Mode: loadgen.NewConn})
	require.NoError(t, err)
	return &load{keep, fresh}
}

// stop ends the load and returns its totals, logged.
func (l *load) stop(t *testing.T) (requests, failed int64) {
	ks, fs := l.keep.Stop(), l.fresh.Stop()
	t.Logf("keep-alive: %v", ks)
	t.Logf("new-conn:   %v", fs)
	return ks.Requests + fs.Requests, ks.Failed + fs.Failed
}

// TestFaultsUnderLoad is the deploy from hell, under load: the binary is
// replaced by a build that exits 3, one that hangs, one that reports a
// failure of its own, and one that dies half a second after it says ready, with SIGHUP after each. Each upgrade
// fails with its reason, the old PID stays in the pidfile and answers,
// no request fails; then a good build takes over.
func TestFaultsUnderLoad(t *testing.T) {
	s := startServer(t, bins.v1, "", "-upgrade-timeout", "2s", "-probation", "2s")
	pid, err := s.WaitPID(t.Context(), 0)
	require.NoError(t, err)
	l := startLoad(t, s.addr, 32)

	crash := filepath.Join(s.dir, "crash.sh")
	require.NoError(t, os.WriteFile(crash, []byte("#!/bin/sh\necho 'panic: config broken' >&2\nexit 3\n"), 0o755))
	hang := filepath.Join(s.dir, "hang.sh")
	require.NoError(t, os.WriteFile(hang, []byte("#!/bin/sh\nexec sleep 300\n"), 0o755))
	faults := []struct{ name, bin, want string }{
		{"exits 3", crash, "exited with status 3 before it was ready (stderr tail: panic: config broken)"},
		{"hangs", hang, "was not ready in time and was stopped"},
		{"reports a failure", bins.failed, "failed: config: listen address missing"},
		{"dies after ready", bins.dying, "said ready, then died with status 4 during its probation, before it served a request (stderr tail: panic: faulty: background worker died)"},
	}
	for i, f := range faults {
		require.NoError(t, harness.Install(f.bin, s.bin))
		require.NoError(t, syscall.Kill(pid, syscall.SIGHUP))
		s.waitLog("upgrade failed; this generation keeps serving", i+1)
		assert.Contains(t, s.Log(), f.want, f.name)
		got, err := s.WaitPID(t.Context(), 0)
		require.NoError(t, err)
		assert.Equal(t, pid, got, "%s: the pidfile names the old generation", f.name)
		s.requireAnswer("v1", pid)
		s.requireOneGeneration(pid)
		t.Logf("%s: upgrade refused, PID %d still live", f.name, pid)
	}
	newPID, _ := s.upgrade(bins.v2, syscall.SIGHUP)
	s.requireAnswer("v2", newPID)
	requests, failed := l.stop(t)
	assert.Zero(t, failed, "failed requests")
	assert.Greater(t, requests, int64(1000))
}

// TestParentKilledMidUpgrade: SIGKILL the live process while a slow but
// good build is starting: the new build still comes up, takes the
// sockets, writes the pidfile and serves, and does not follow its parent.
func TestParentKilledMidUpgrade(t *testing.T) {
	s := startServer(t, bins.v1, "")
	pid, err := s.WaitPID(t.Context(), 0)
	require.NoError(t, err)
	require.NoError(t, harness.Install(bins.slow, s.bin))
	require.NoError(t, syscall.Kill(pid, syscall.SIGUSR2))
	s.waitLog("new generation started", 1)
	l := startLoad(t, s.addr, 8)
	time.Sleep(200 * time.Millisecond) // the child is still sleeping
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	newPID, err := s.WaitPID(ctx, pid)
	require.NoError(t, err)
	s.requireAnswer("slow", newPID)
	s.requireOneGeneration(newPID)
	// Whatever the killed parent held in flight is lost: SIGKILL. Requests
	// after the new build is up must all succeed.
	_, killed := l.stop(t)
	t.Logf("requests lost with the SIGKILLed parent: %d (at most one per client and connection it held)", killed)
	assert.LessOrEqual(t, killed, int64(2*8))
	after := startLoad(t, s.addr, 8)
	time.Sleep(500 * time.Millisecond)
	_, failed := after.stop(t)
	assert.Zero(t, failed, "failed requests once the new build is up")
	assert.Contains(t, s.Log(), "starting slowly")
	// It can upgrade on: no parent is needed.
	newer, _ := s.upgrade(bins.v2, syscall.SIGUSR2)
	s.requireAnswer("v2", newer)
}

// TestOverlappingDrains: a live process upgrades while older generations
// still drain long requests, up to -max-generations; past the cap the
// upgrade is refused with a reason, and allowed again once the oldest
// have finished. No request fails, the long ones included.
func TestOverlappingDrains(t *testing.T) {
	s := startServer(t, bins.v1, "", "-max-generations", "3", "-drain-timeout", "60s")
	pid, err := s.WaitPID(t.Context(), 0)
	require.NoError(t, err)
	l := startLoad(t, s.addr, 16)

	// longRequest returns once the request is being served (its headers
	// came back, naming the generation), and later sends its outcome on slow.
	slow := make(chan string, 16)
	long := 0
	longRequest := func() (servedBy string) {
		long++
		c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}
		resp, err := c.Get("http://" + s.addr + "/sleep?d=8s")
		require.NoError(t, err)
		go func() {
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				slow <- "error: " + err.Error()
				return
			}
			slow <- fmt.Sprintf("%d %s", resp.StatusCode, b)
		}()
		return resp.Header.Get("X-Pid")
	}
	v1 := pid
	require.Equal(t, strconv.Itoa(v1), longRequest(), "held by v1 through its drain")
	require.NoError(t, harness.Install(bins.v2, s.bin))
	require.NoError(t, syscall.Kill(v1, syscall.SIGUSR2))
	v2, err := s.WaitPID(t.Context(), v1)
	require.NoError(t, err)
	// v2 may not accept yet in the moment after its pidfile names it: ask
	// until it is v2 that serves the long request.
	for {
		by := longRequest()
		if by == strconv.Itoa(v2) {
			break
		}
		require.Equal(t, strconv.Itoa(v1), by, "a long request served by neither v1 nor v2")
		require.Less(t, long, cap(slow), "v2 never served a long request")
	}
	require.NoError(t, harness.Install(bins.v1, s.bin))
	require.NoError(t, syscall.Kill(v2, syscall.SIGUSR2))
	v3, err := s.WaitPID(t.Context(), v2)
	require.NoError(t, err)
	members, err := harness.Group(s.Cmd.Process.Pid)
	require.NoError(t, err)
	assert.ElementsMatch(t, []int{v1, v2, v3}, members, "two generations drain while the third serves")

	// A fourth would exceed -max-generations 3.
	require.NoError(t, syscall.Kill(v3, syscall.SIGUSR2))
	s.waitLog("too many generations alive", 1)
	assert.Contains(t, s.Log(), fmt.Sprintf("older ones still draining or parked in a rollback window: PIDs %d, %d", v2, v1))
	got, err := s.WaitPID(t.Context(), 0)
	require.NoError(t, err)
	assert.Equal(t, v3, got)

	for range long {
		body := <-slow
		assert.Regexp(t, `^200 version=v\d pid=\d+$`, body, "a long request finished by its draining generation")
	}
	require.NoError(t, harness.WaitGone(t.Context(), v1))
	require.NoError(t, harness.WaitGone(t.Context(), v2))
	v4, _ := s.upgrade(bins.v2, syscall.SIGUSR2)
	s.requireAnswer("v2", v4)
	_, failed := l.stop(t)
	assert.Zero(t, failed)
}

// TestSignalStorm: 20 upgrade signals within 100 ms, under load, end with
// exactly one live generation serving; a later upgrade works.
func TestSignalStorm(t *testing.T) {
	s := startServer(t, bins.v1, "")
	pid, err := s.WaitPID(t.Context(), 0)
	require.NoError(t, err)
	l := startLoad(t, s.addr, 32)
	require.NoError(t, harness.Install(bins.v2, s.bin))
	for range 20 {
		syscall.Kill(pid, syscall.SIGHUP)
		time.Sleep(5 * time.Millisecond)
	}
	newPID, err := s.WaitPID(t.Context(), pid)
	require.NoError(t, err)
	require.NoError(t, harness.WaitGone(t.Context(), pid))
	time.Sleep(300 * time.Millisecond) // anything the storm queued has run
	s.requireOneGeneration(newPID)
	got, err := s.WaitPID(t.Context(), 0)
	require.NoError(t, err)
	assert.Equal(t, newPID, got, "one upgrade came of the storm")
	s.requireAnswer("v2", newPID)
	assert.Equal(t, 1, strings.Count(s.Log(), "new generation started"), "exactly one child was started")

	later, _ := s.upgrade(bins.v1, syscall.SIGHUP)
	s.requireAnswer("v1", later)
	_, failed := l.stop(t)
	assert.Zero(t, failed)
}
