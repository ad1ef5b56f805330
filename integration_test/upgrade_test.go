//go:build linux

package integration_test

import (
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/handoff-go/handoff/internal/harness"
	"github.com/handoff-go/handoff/internal/loadgen"
)

// TestUpgradeUnderLoad upgrades the server many times while keep-alive
// and new-connection clients hammer it, replacing the binary each time,
// and counts every failed request.
func TestUpgradeUnderLoad(t *testing.T) {
	n := *upgradesFlag
	if n == 0 {
		n = 50
		if testing.Short() {
			n = 10
		}
	}
	s := startServer(t, bins.v1, "", "-drain-timeout", "10s")
	pid, err := s.WaitPID(t.Context(), 0)
	require.NoError(t, err)
	baseFDs, err := harness.FDs(pid) // before any connection
	require.NoError(t, err)
	s.requireAnswer("v1", pid)

	keep, err := loadgen.Start(loadgen.Config{Addr: s.addr, Clients: *clientsFlag, Mode: loadgen.KeepAlive})
	require.NoError(t, err)
	fresh, err := loadgen.Start(loadgen.Config{Addr: s.addr, Clients: *clientsFlag, Mode: loadgen.NewConn})
	require.NoError(t, err)
	signals := []syscall.Signal{syscall.SIGUSR2, syscall.SIGHUP, syscall.SIGUSR1}
	var tooks []time.Duration
	for i := 1; i <= n; i++ {
		version, bin := "v2", bins.v2
		if i%2 == 0 {
			version, bin = "v1", bins.v1
		}
		time.Sleep(50 * time.Millisecond) // let load reach the new generation
		newPID, took := s.upgrade(bin, signals[i%len(signals)])
		tooks = append(tooks, took)
		require.NotEqual(t, pid, newPID)
		s.requireAnswer(version, newPID)
		s.requireOneGeneration(newPID)
		pid = newPID
	}
	time.Sleep(100 * time.Millisecond)
	ks, fs := keep.Stop(), fresh.Stop()
	t.Logf("keep-alive: %v", ks)
	t.Logf("new-conn:   %v", fs)
	slices.Sort(tooks)
	t.Logf("%d upgrades; signal -> old process gone: p50 %v, max %v", n, tooks[len(tooks)/2], tooks[len(tooks)-1])
	assert.Zero(t, ks.Failed, "failed keep-alive requests: %v", ks.Errors)
	assert.Zero(t, fs.Failed, "failed new-connection requests: %v", fs.Errors)
	assert.Greater(t, ks.Requests, int64(n))
	assert.Greater(t, fs.Requests, int64(n))

	// Once the clients have gone, the live generation holds no more
	// descriptors than the first did before any load. (Not exactly as
	// many: the first may be caught in the middle of writing its pidfile.)
	var fds int
	assert.Eventually(t, func() bool {
		fds, err = harness.FDs(pid)
		return err == nil && fds <= baseFDs
	}, 5*time.Second, 10*time.Millisecond, "fds of the live process grew over %d upgrades: first generation had %d", n, baseFDs)
	t.Logf("fds: first generation %d, generation %d: %d", baseFDs, n+1, fds)
}

// TestUpgradeFollowsSymlink starts the server through a current ->
// releases/v1 symlink and flips it to releases/v2: the upgrade must start
// the new build, which a path resolved at start-up would miss.
func TestUpgradeFollowsSymlink(t *testing.T) {
	dir := t.TempDir()
	for v, bin := range map[string]string{"v1": bins.v1, "v2": bins.v2} {
		require.NoError(t, os.MkdirAll(filepath.Join(dir, "releases", v), 0o755))
		require.NoError(t, harness.Install(bin, filepath.Join(dir, "releases", v, "httpserver")))
	}
	current := filepath.Join(dir, "current")
	require.NoError(t, os.Symlink("releases/v1", current))
	s := startServer(t, "", filepath.Join(current, "httpserver"))
	pid, err := s.WaitPID(t.Context(), 0)
	require.NoError(t, err)
	s.requireAnswer("v1", pid)

	// Flip atomically, as a deploy tool does.
	tmp := filepath.Join(dir, "current.new")
	require.NoError(t, os.Symlink("releases/v2", tmp))
	require.NoError(t, os.Rename(tmp, current))
	pid, _ = s.upgrade("", syscall.SIGHUP)
	s.requireAnswer("v2", pid)
	s.requireOneGeneration(pid)
}

// TestFailedUpgradesKeepServing replaces the binary with a build that
// crashes at start and with one that hangs: each upgrade must fail with
// its reason logged, the old generation must keep serving every request,
// no process may be left over, and a good build must upgrade afterwards.
func TestFailedUpgradesKeepServing(t *testing.T) {
	s := startServer(t, bins.v1, "", "-upgrade-timeout", "2s")
	pid, err := s.WaitPID(t.Context(), 0)
	require.NoError(t, err)
	load, err := loadgen.Start(loadgen.Config{Addr: s.addr, Clients: 32, Mode: loadgen.KeepAlive})
	require.NoError(t, err)
	fresh, err := loadgen.Start(loadgen.Config{Addr: s.addr, Clients: 32, Mode: loadgen.NewConn})
	require.NoError(t, err)

	crash := filepath.Join(s.dir, "crash.sh")
	require.NoError(t, os.WriteFile(crash, []byte("#!/bin/sh\necho 'panic: config broken' >&2\nexit 3\n"), 0o755))
	hang := filepath.Join(s.dir, "hang.sh")
	require.NoError(t, os.WriteFile(hang, []byte("#!/bin/sh\necho 'starting slowly' >&2\nexec sleep 300\n"), 0o755))

	cases := []struct {
		name, bin, want string
	}{
		{"exits before ready", crash, "exited with status 3 before it was ready (stderr tail: panic: config broken)"},
		{"hangs past the upgrade timeout", hang, "was not ready in time and was stopped: no word from it within 2s; it ended by signal terminated (stderr tail: starting slowly)"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			require.NoError(t, harness.Install(c.bin, s.bin))
			require.NoError(t, syscall.Kill(pid, syscall.SIGUSR2))
			s.waitLog("upgrade failed; this generation keeps serving", i+1)
			assert.Contains(t, s.Log(), c.want)
			got, err := harness.Group(s.Cmd.Process.Pid)
			require.NoError(t, err)
			assert.Equal(t, []int{pid}, got, "only the old generation is alive")
			readPID, err := s.WaitPID(t.Context(), 0)
			require.NoError(t, err)
			assert.Equal(t, pid, readPID, "the pidfile still names the old generation")
			s.requireAnswer("v1", pid)
		})
	}
	newPID, _ := s.upgrade(bins.v2, syscall.SIGUSR2)
	s.requireAnswer("v2", newPID)
	ks, fs := load.Stop(), fresh.Stop()
	assert.Zero(t, ks.Failed, "failed keep-alive requests: %v", ks.Errors)
	assert.Zero(t, fs.Failed, "failed new-connection requests: %v", fs.Errors)
	t.Logf("keep-alive: %v", ks)
	t.Logf("new-conn:   %v", fs)
}

// TestStopIsGraceful stops the server with SIGTERM under load: it exits
// with status 0 after answering what it accepted, and removes its pidfile.
func TestStopIsGraceful(t *testing.T) {
	s := startServer(t, bins.v1, "")
	pid, err := s.WaitPID(t.Context(), 0)
	require.NoError(t, err)
	require.NoError(t, syscall.Kill(pid, syscall.SIGTERM))
	state, err := s.WaitFirst(t.Context())
	require.NoError(t, err)
	assert.Equal(t, 0, state.ExitCode(), "exit status after SIGTERM")
	_, err = os.Stat(s.PIDFile)
	assert.ErrorIs(t, err, os.ErrNotExist, "pidfile removed on a final stop")
}
