//go:build unix

package supervisor

import (
	"bufio"
	"context"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/handoff-go/handoff/internal/control"
)

// harness runs a Supervisor over the test binary as worker.
type harness struct {
	t     *testing.T
	s     *Supervisor
	sock  string // the unix listener handed to workers
	mode  string // the workers' mode file
	errc  chan error
	stop  context.CancelFunc
	ended bool
}

func start(t *testing.T, mod func(*Config)) *harness {
	dir := t.TempDir()
	h := &harness{t: t, sock: filepath.Join(dir, "s"), mode: filepath.Join(dir, "mode"), errc: make(chan error, 1)}
	h.setMode("ready")
	cfg := Config{
		Listen:         []Listen{{"unix", h.sock}},
		Program:        []string{os.Args[0], argWorker, h.mode},
		Env:            workerEnv(),
		UpgradeTimeout: 5 * time.Second,
		DrainTimeout:   5 * time.Second,
		PIDFile:        filepath.Join(dir, "pid"),
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg)
	require.NoError(t, err)
	h.s = s
	ctx, cancel := context.WithCancel(context.Background())
	h.stop = cancel
	go func() { h.errc <- s.Run(ctx) }()
	t.Cleanup(func() {
		if !h.ended {
			h.end()
		}
	})
	require.Eventually(t, func() bool { return s.Status().WorkerPID != 0 }, 10*time.Second, 5*time.Millisecond)
	return h
}

// workerEnv is the workers' environment: a race-enabled worker would
// sleep a second at exit.
func workerEnv() []string {
	return append(os.Environ(), "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
}

func (h *harness) setMode(m string) {
	require.NoError(h.t, os.WriteFile(h.mode, []byte(m), 0o644))
}

// end stops the supervisor and returns Run's result.
func (h *harness) end() error {
	h.ended = true
	h.stop()
	select {
	case err := <-h.errc:
		return err
	case <-time.After(20 * time.Second):
		h.t.Fatal("Run did not return")
		return nil
	}
}

// answer returns the PID of the worker that accepts a connection.
func (h *harness) answer() int {
	h.t.Helper()
	c, err := net.Dial("unix", h.sock)
	require.NoError(h.t, err)
	defer c.Close()
	line, err := bufio.NewReader(c).ReadString('\n')
	require.NoError(h.t, err)
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	require.NoError(h.t, err)
	return pid
}

func TestSupervisorUpgrade(t *testing.T) {
	h := start(t, nil)
	st := h.s.Status()
	assert.True(t, st.Supervisor)
	assert.Equal(t, os.Getpid(), st.PID)
	assert.Equal(t, 1, st.Generation)
	assert.Equal(t, []string{"unix/" + h.sock}, st.Listeners)
	first := st.WorkerPID
	assert.Equal(t, first, h.answer())

	res := h.s.Upgrade(t.Context())
	require.True(t, res.OK, res.Error)
	assert.Equal(t, first, res.OldPID)
	assert.NotEqual(t, first, res.NewPID)
	// The old worker may accept for a moment after its SIGTERM: ask once
	// it has been reaped.
	require.Eventually(t, func() bool { return len(h.s.Status().Draining) == 0 }, 10*time.Second, 5*time.Millisecond)
	assert.Equal(t, res.NewPID, h.answer())
	st = h.s.Status()
	assert.Equal(t, 2, st.Generation)
	assert.Equal(t, res.NewPID, st.WorkerPID)
	require.NotNil(t, st.LastUpgrade)
	assert.True(t, st.LastUpgrade.OK)

	// Two at once: one runs, one is refused at once.
	var wg sync.WaitGroup
	results := make([]control.UpgradeResult, 2)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = h.s.Upgrade(t.Context())
		}()
	}
	wg.Wait()
	if !results[0].OK {
		results[0], results[1] = results[1], results[0]
	}
	assert.True(t, results[0].OK, results[0].Error)
	assert.False(t, results[1].OK)
	assert.True(t, results[1].Refused)
	assert.Empty(t, results[1].Stage, "a refused upgrade has no stage: it did not begin")
	assert.Contains(t, results[1].Error, "an upgrade is already in progress")

	assert.NoError(t, h.end(), "the worker exits 0 on SIGTERM")
	_, err := os.Stat(h.s.cfg.PIDFile)
	assert.ErrorIs(t, err, os.ErrNotExist)

	// Once stopped, nothing more is started.
	res = h.s.Upgrade(t.Context())
	assert.True(t, res.Refused)
	assert.Contains(t, res.Error, "stopping")
	assert.True(t, h.s.Status().LastUpgrade.OK, "a refused upgrade is not the last upgrade")
}

func TestSupervisorFailedUpgrade(t *testing.T) {
	h := start(t, func(c *Config) { c.UpgradeTimeout = 2 * time.Second })
	old := h.s.Status().WorkerPID

	h.setMode("exit3")
	res := h.s.Upgrade(t.Context())
	assert.False(t, res.OK)
	assert.Equal(t, control.StageExited, res.Stage)
	require.NotNil(t, res.ExitCode)
	assert.Equal(t, 3, *res.ExitCode)
	assert.Equal(t, "boom: cannot parse config\n", res.Stderr)
	assert.Contains(t, res.Error, "exited with status 3 before it was ready (stderr tail: boom: cannot parse config); the old worker keeps serving")
	assert.Equal(t, old, h.answer())

	if runtime.GOOS == "linux" {
		// READY=1 from a process other than the worker does not count.
		h.setMode("forked")
		res = h.s.Upgrade(t.Context())
		assert.False(t, res.OK)
		assert.Equal(t, control.StageTimeout, res.Stage)
		assert.Equal(t, "terminated", res.Signal)
		assert.Equal(t, old, h.answer())
	}
	h.setMode("ready")
	res = h.s.Upgrade(t.Context())
	assert.True(t, res.OK, res.Error)
	assert.NoError(t, h.end())
}

func TestSupervisorCrash(t *testing.T) {
	t.Run("restart", func(t *testing.T) {
		h := start(t, nil)
		old := h.s.Status().WorkerPID
		require.NoError(t, syscall.Kill(old, syscall.SIGKILL))
		require.Eventually(t, func() bool {
			pid := h.s.Status().WorkerPID
			return pid != 0 && pid != old
		}, 10*time.Second, 5*time.Millisecond)
		assert.Equal(t, h.s.Status().WorkerPID, h.answer())
		assert.Equal(t, 2, h.s.Status().Generation)
		assert.NoError(t, h.end())
	})
	t.Run("exit", func(t *testing.T) {
		h := start(t, func(c *Config) { c.OnCrash = CrashExit })
		pid := h.s.Status().WorkerPID
		require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
		select {
		case err := <-h.errc:
			h.ended = true
			var ee *ExitError
			require.ErrorAs(t, err, &ee)
			assert.Equal(t, ExitError{PID: pid, Code: 1, Signal: "killed", Crash: true}, *ee)
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return after the crash")
		}
	})
}

func TestSupervisorFirstWorkerFails(t *testing.T) {
	dir := t.TempDir()
	mode := filepath.Join(dir, "mode")
	require.NoError(t, os.WriteFile(mode, []byte("exit3"), 0o644))
	s, err := New(Config{
		Listen:  []Listen{{"unix", filepath.Join(dir, "s")}},
		Program: []string{os.Args[0], argWorker, mode},
	})
	require.NoError(t, err)
	err = s.Run(t.Context())
	assert.ErrorContains(t, err, "exited with status 3 before it was ready (stderr tail: boom: cannot parse config)")
	_, err = os.Stat(filepath.Join(dir, "s"))
	assert.ErrorIs(t, err, os.ErrNotExist, "the socket file is removed")
}

// TestSupervisorNoLeaks: upgrades and failed upgrades leave the
// supervisor with as many descriptors and goroutines as before them.
func TestSupervisorNoLeaks(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("counts /proc/self/fd")
	}
	tmp := t.TempDir() // where the workers' notify sockets are made
	t.Setenv("TMPDIR", tmp)
	h := start(t, nil)
	fds := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		require.NoError(t, err)
		return len(ents)
	}
	settled := func() {
		require.Eventually(t, func() bool { return len(h.s.Status().Draining) == 0 }, 10*time.Second, 5*time.Millisecond)
	}
	// One upgrade first, so that lazily created runtime resources exist.
	require.True(t, h.s.Upgrade(t.Context()).OK)
	settled()
	fd0, g0 := fds(), runtime.NumGoroutine()
	n := 15
	if testing.Short() {
		n = 5
	}
	for i := range n {
		if i%5 == 4 {
			h.setMode("exit3")
			require.False(t, h.s.Upgrade(t.Context()).OK)
			h.setMode("ready")
			continue
		}
		res := h.s.Upgrade(t.Context())
		require.True(t, res.OK, res.Error)
		settled()
	}
	settled()
	// Polled here, not with assert.Eventually, whose own goroutine would
	// be counted.
	var fd1, g1 int
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		fd1, g1 = fds(), runtime.NumGoroutine()
		if fd1 <= fd0 && g1 <= g0 || time.Now().After(deadline) {
			break
		}
	}
	assert.LessOrEqual(t, fd1, fd0, "descriptors after %d upgrades", n)
	assert.LessOrEqual(t, g1, g0, "goroutines after %d upgrades", n)
	t.Logf("after %d upgrades (1 in 5 failed): descriptors %d -> %d, goroutines %d -> %d", n, fd0, fd1, g0, g1)
	require.NoError(t, h.end())
	left, err := os.ReadDir(tmp)
	require.NoError(t, err)
	assert.Empty(t, left, "notify socket directories left behind")
}
