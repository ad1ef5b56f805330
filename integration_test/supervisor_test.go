//go:build linux

package integration_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/handoff-go/handoff/internal/control"
	"github.com/handoff-go/handoff/internal/harness"
	"github.com/handoff-go/handoff/internal/loadgen"
	"github.com/handoff-go/handoff/pidfile"
)

// handoffBin is the handoff command, built once for the supervisor tests.
var handoffBin struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// buildHandoff builds ./cmd/handoff once, and skips the test if python3
// (the foreign worker's language) is missing.
func buildHandoff(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("python3"); err != nil {
		requireTool(t, "python3 not found: the supervisor tests run a Python worker")
	}
	handoffBin.once.Do(func() {
		handoffBin.dir, handoffBin.err = os.MkdirTemp("", "handoff-supervisor-test-")
		if handoffBin.err != nil {
			return
		}
		handoffBin.path = filepath.Join(handoffBin.dir, "handoff")
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		handoffBin.err = harness.Build(ctx, "./cmd/handoff", "dev", handoffBin.path)
	})
	require.NoError(t, handoffBin.err)
	return handoffBin.path
}

// supervised is `handoff run` over testdata/pyserver, in a temp dir where
// the test controls the worker's version (file "version") and whether it
// fails at start (file "fail").
type supervised struct {
	*harness.Server
	t       *testing.T
	dir     string
	addr    string
	control string
}

func (s *supervised) setVersion(v string) {
	require.NoError(s.t, os.WriteFile(filepath.Join(s.dir, "version"), []byte(v), 0o644))
}

func (s *supervised) setFail(fail bool) {
	p := filepath.Join(s.dir, "fail")
	if fail {
		require.NoError(s.t, os.WriteFile(p, nil, 0o644))
	} else {
		require.NoError(s.t, os.Remove(p))
	}
}

// pyWorkerDir copies the Python fixture into a fresh directory.
func pyWorkerDir(t *testing.T) string {
	dir := t.TempDir()
	for _, f := range []string{"server.py", "run.sh"} {
		b, err := os.ReadFile(filepath.Join("testdata", "pyserver", f))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, f), b, 0o755))
	}
	return dir
}

// startSupervised runs `handoff run` with extra options and waits until its
// pidfile names it.
func startSupervised(t *testing.T, extra ...string) *supervised {
	t.Helper()
	bin := buildHandoff(t)
	dir := pyWorkerDir(t)
	addr, err := harness.FreePort()
	require.NoError(t, err)
	s := &supervised{t: t, dir: dir, addr: addr, control: filepath.Join(dir, "ctl.sock")}
	s.setVersion("v0")
	pidPath := filepath.Join(dir, "run.pid")
	args := append([]string{"run", "-listen", "tcp:" + addr, "-pidfile", pidPath, "-control", s.control}, extra...)
	args = append(args, "--", "sh", filepath.Join(dir, "run.sh"))
	hs, err := harness.Start(bin, pidPath, filepath.Join(dir, "run.log"), args...)
	require.NoError(t, err)
	s.Server = hs
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		assert.NoError(t, hs.Stop(ctx), "stopping the supervisor")
		if t.Failed() {
			t.Logf("supervisor log:\n%s", hs.Log())
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	pid, err := hs.WaitPID(ctx, 0)
	require.NoError(t, err)
	require.Equal(t, hs.Cmd.Process.Pid, pid, "the pidfile names the supervisor")
	return s
}

func (s *supervised) do(cmd string) control.Response {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := control.Do(ctx, s.control, control.Request{Cmd: cmd})
	require.NoError(s.t, err)
	require.Empty(s.t, resp.Error)
	return resp
}

func (s *supervised) status() control.Status {
	s.t.Helper()
	st := s.do(control.CmdStatus).Status
	require.NotNil(s.t, st)
	return *st
}

// requireAnswer asserts the worker with pid answers, as version.
func (s *supervised) requireAnswer(version string, pid int) {
	s.t.Helper()
	srv := server{t: s.t, addr: s.addr}
	srv.requireAnswer(version, pid)
}

// requireSupervisor asserts the supervisor is the process it was, and the
// pidfile still names it.
func (s *supervised) requireSupervisor() {
	s.t.Helper()
	pid, err := pidfile.Read(s.PIDFile)
	require.NoError(s.t, err)
	require.Equal(s.t, s.Cmd.Process.Pid, pid, "pidfile")
	st := s.status()
	require.True(s.t, st.Supervisor)
	require.Equal(s.t, s.Cmd.Process.Pid, st.PID, "supervisor PID in status")
}

// TestSupervisorUpgradeUnderLoad upgrades a Python server under `handoff
// run` ten times through the control socket while keep-alive and
// new-connection clients hammer it, then tries a build that fails at
// start, then two upgrades at once, and counts every failed request.
func TestSupervisorUpgradeUnderLoad(t *testing.T) {
	s := startSupervised(t, "-drain-timeout", "10s", "-upgrade-timeout", "20s")
	s.requireSupervisor()
	st := s.status()
	worker := st.WorkerPID
	require.NotZero(t, worker)
	assert.Equal(t, 1, st.Generation)
	assert.Equal(t, []string{"tcp/" + strings.ReplaceAll(s.addr, ":", "%3A")}, st.Listeners)
	s.requireAnswer("v0", worker)

	keep, err := loadgen.Start(loadgen.Config{Addr: s.addr, Clients: 16, Mode: loadgen.KeepAlive})
	require.NoError(t, err)
	fresh, err := loadgen.Start(loadgen.Config{Addr: s.addr, Clients: 16, Mode: loadgen.NewConn})
	require.NoError(t, err)
	defer keep.Stop()
	defer fresh.Stop()

	const n = 10
	for i := 1; i <= n; i++ {
		version := fmt.Sprintf("v%d", i)
		s.setVersion(version)
		time.Sleep(50 * time.Millisecond) // let load reach the new worker
		res := s.do(control.CmdUpgrade).Upgrade
		require.NotNil(t, res)
		require.True(t, res.OK, "upgrade %d: %s", i, res.Error)
		assert.Equal(t, worker, res.OldPID)
		require.NotEqual(t, worker, res.NewPID)
		// The old worker may accept for a moment after its SIGTERM (and
		// answers what it accepted), so ask once it is gone.
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		require.NoError(t, harness.WaitGone(ctx, worker), "old worker drained")
		cancel()
		s.requireAnswer(version, res.NewPID)
		s.requireSupervisor()
		worker = res.NewPID
	}

	// A build that exits 3 at start: the old worker keeps serving.
	s.setFail(true)
	res := s.do(control.CmdUpgrade).Upgrade
	require.NotNil(t, res)
	assert.False(t, res.OK)
	assert.Equal(t, "exited", res.Stage)
	if assert.NotNil(t, res.ExitCode) {
		assert.Equal(t, 3, *res.ExitCode)
	}
	assert.Contains(t, res.Stderr, "boom: cannot parse config")
	assert.Contains(t, res.Error, "exited with status 3 before it was ready")
	assert.Equal(t, worker, res.OldPID)
	s.requireAnswer(fmt.Sprintf("v%d", n), worker)
	st = s.status()
	assert.Equal(t, worker, st.WorkerPID)
	assert.Equal(t, n+1, st.Generation)
	if assert.NotNil(t, st.LastUpgrade) {
		assert.False(t, st.LastUpgrade.OK)
	}
	s.setFail(false)

	// Two upgrades at once: one runs, the other is refused at once.
	var wg sync.WaitGroup
	results := make([]*control.UpgradeResult, 2)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			resp, err := control.Do(ctx, s.control, control.Request{Cmd: control.CmdUpgrade})
			if assert.NoError(t, err) {
				results[i] = resp.Upgrade
			}
		}()
	}
	wg.Wait()
	require.NotNil(t, results[0])
	require.NotNil(t, results[1])
	ok, busy := results[0], results[1]
	if !ok.OK {
		ok, busy = busy, ok
	}
	assert.True(t, ok.OK, "one upgrade runs: %s", ok.Error)
	assert.False(t, busy.OK)
	assert.Contains(t, busy.Error, "an upgrade is already in progress")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	require.NoError(t, harness.WaitGone(ctx, worker), "old worker drained")
	cancel()
	s.requireAnswer(fmt.Sprintf("v%d", n), ok.NewPID)
	worker = ok.NewPID

	time.Sleep(100 * time.Millisecond)
	ks, fs := keep.Stop(), fresh.Stop()
	t.Logf("keep-alive: %v", ks)
	t.Logf("new-conn:   %v", fs)
	assert.Zero(t, ks.Failed, "failed keep-alive requests: %v", ks.Errors)
	assert.Zero(t, fs.Failed, "failed new-connection requests: %v", fs.Errors)
	assert.Greater(t, ks.Requests, int64(n))
	assert.Greater(t, fs.Requests, int64(n))

	// SIGTERM: the worker drains, the supervisor exits 0 and cleans up.
	require.NoError(t, syscall.Kill(s.Cmd.Process.Pid, syscall.SIGTERM))
	state, err := s.WaitFirst(t.Context())
	require.NoError(t, err)
	assert.Equal(t, 0, state.ExitCode(), "exit status after SIGTERM")
	assert.False(t, harness.Alive(worker), "worker stopped")
	_, err = os.Stat(s.PIDFile)
	assert.ErrorIs(t, err, os.ErrNotExist, "pidfile removed")
	_, err = os.Stat(s.control)
	assert.ErrorIs(t, err, os.ErrNotExist, "control socket removed")
}

// TestSupervisorCrash kills the worker: with -on-crash restart (the
// default) a new one serves under the same supervisor; with -on-crash exit
// the supervisor exits 1 (the worker was killed by a signal).
func TestSupervisorCrash(t *testing.T) {
	t.Run("restart", func(t *testing.T) {
		s := startSupervised(t)
		old := s.status().WorkerPID
		require.NoError(t, syscall.Kill(old, syscall.SIGKILL))
		var st control.Status
		require.Eventually(t, func() bool {
			st = s.status()
			return st.WorkerPID != 0 && st.WorkerPID != old
		}, 15*time.Second, 20*time.Millisecond, "a new worker after the crash")
		s.requireAnswer("v0", st.WorkerPID)
		s.requireSupervisor()
		assert.Equal(t, 2, st.Generation)
		assert.Contains(t, s.Log(), "worker died on its own")
	})
	t.Run("exit", func(t *testing.T) {
		s := startSupervised(t, "-on-crash", "exit")
		require.NoError(t, syscall.Kill(s.status().WorkerPID, syscall.SIGKILL))
		ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
		defer cancel()
		state, err := s.WaitFirst(ctx)
		require.NoError(t, err)
		assert.Equal(t, 1, state.ExitCode())
		_, err = os.Stat(s.PIDFile)
		assert.ErrorIs(t, err, os.ErrNotExist, "pidfile removed")
	})
}

// TestSupervisorStartErrors: usage errors exit 2; a first worker that
// fails exits 1 with its reason.
func TestSupervisorStartErrors(t *testing.T) {
	bin := buildHandoff(t)
	dir := pyWorkerDir(t)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "fail"), nil, 0o644))
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no listen", []string{"--", "true"}, 2, "no sockets to listen on"},
		{"no program", []string{"-listen", "tcp:127.0.0.1:0"}, 2, "no program to run"},
		{"bad listen", []string{"-listen", "127.0.0.1:80", "--", "true"}, 2, "listen network"},
		{"bad ready", []string{"-listen", "tcp:127.0.0.1:0", "-ready", "soon", "--", "true"}, 2, "delay=DURATION"},
		{"first worker fails", []string{"-listen", "tcp:127.0.0.1:0", "--", "sh", filepath.Join(dir, "run.sh")}, 1,
			"exited with status 3 before it was ready (stderr tail: boom: cannot parse config)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, bin, append([]string{"run"}, c.args...)...).CombinedOutput()
			var ee *exec.ExitError
			require.True(t, errors.As(err, &ee), "exit status: %v\n%s", err, out)
			assert.Equal(t, c.code, ee.ExitCode(), "%s", out)
			assert.Contains(t, string(out), c.want)
		})
	}
}
