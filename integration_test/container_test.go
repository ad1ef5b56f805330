//go:build linux

package integration_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/handoff-go/handoff/internal/control"
	"github.com/handoff-go/handoff/internal/harness"
	"github.com/handoff-go/handoff/internal/loadgen"
	"github.com/handoff-go/handoff/internal/procfs"
)

// requireRoot skips a test that needs root, except in CI (HANDOFF_CI set),
// which runs as root: there a skip would hide that the test never ran.
func requireRoot(t *testing.T, why string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("HANDOFF_CI") != "" {
		t.Fatalf("needs root (%s), and CI runs as root: run .ci/run as root", why)
	}
	t.Skip("needs root: " + why)
}

// requireTool skips a test whose tool is missing, except in CI, which
// installs every one: there a skip would hide that the test never ran.
func requireTool(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("HANDOFF_CI") != "" {
		t.Fatal(why + "; CI installs it")
	}
	t.Skip(why)
}

// inNamespace starts argv as PID 1 of a new PID namespace (unshare
// --pid --fork --mount-proc, as a container runtime would) and returns the
// harness server of unshare and the host PID of the namespace's init.
func inNamespace(t *testing.T, dir string, argv ...string) (*harness.Server, int) {
	t.Helper()
	requireRoot(t, "a PID namespace")
	unshare, err := exec.LookPath("unshare")
	require.NoError(t, err, "unshare (util-linux) makes the PID namespace")
	args := append([]string{"--pid", "--fork", "--mount-proc"}, argv...)
	hs, err := harness.Start(unshare, filepath.Join(dir, "unused.pid"), filepath.Join(dir, "ns.log"), args...)
	require.NoError(t, err)
	var init int
	require.Eventually(t, func() bool {
		for pid := range procfs.Children(hs.Cmd.Process.Pid) {
			init = pid
		}
		return init != 0
	}, 10*time.Second, time.Millisecond, "unshare forked no init")
	t.Cleanup(func() {
		// The namespace ends with its init, not with unshare.
		syscall.Kill(init, syscall.SIGTERM)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		hs.WaitFirst(ctx)
		hs.Stop(ctx)
		if t.Failed() {
			t.Logf("log:\n%s", hs.Log())
		}
	})
	return hs, init
}

// TestContainerInit runs `handoff run` as PID 1 of a PID namespace, a
// container's entrypoint, over a worker that leaves a process behind each
// time it starts: 20 upgrades under load fail no request, and no zombie is
// left, as every orphan is reparented to the supervisor and reaped.
func TestContainerInit(t *testing.T) {
	bin := buildHandoff(t)
	dir := pyWorkerDir(t)
	addr, err := harness.FreePort()
	require.NoError(t, err)
	s := &supervised{t: t, dir: dir, addr: addr, control: filepath.Join(dir, "ctl.sock")}
	s.setVersion("v0")
	t.Setenv("ORPHAN", "1")
	_, init := inNamespace(t, dir, bin, "run", "-listen", "tcp:"+addr, "-control", s.control,
		"-drain-timeout", "10s", "--", "sh", filepath.Join(dir, "run.sh"))
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		resp, err := control.Do(ctx, s.control, control.Request{Cmd: control.CmdStatus})
		return err == nil && resp.Status != nil && resp.Status.WorkerPID != 0
	}, 20*time.Second, 10*time.Millisecond, "handoff run did not come up")
	st := s.status()
	assert.Equal(t, 1, st.PID, "handoff run is PID 1 of its namespace")

	keep, err := loadgen.Start(loadgen.Config{Addr: addr, Clients: 8, Mode: loadgen.KeepAlive})
	require.NoError(t, err)
	fresh, err := loadgen.Start(loadgen.Config{Addr: addr, Clients: 8, Mode: loadgen.NewConn})
	require.NoError(t, err)
	defer keep.Stop()
	defer fresh.Stop()
	orphans := 0 // the most seen at once: proof that there were some to reap
	const n = 20
	for i := 1; i <= n; i++ {
		version := fmt.Sprintf("v%d", i)
		s.setVersion(version)
		res := s.do(control.CmdUpgrade).Upgrade
		require.NotNil(t, res)
		require.True(t, res.OK, "upgrade %d: %s", i, res.Error)
		// The old worker may answer until its drain closes its copy of
		// the listener; then only the new one does.
		want := fmt.Sprintf("version=%s pid=%d", version, res.NewPID)
		srv := &server{t: t, addr: addr}
		require.Eventually(t, func() bool { body, err := srv.get(); return err == nil && body == want },
			15*time.Second, 5*time.Millisecond, "upgrade %d: %s never answered", i, want)
		orphans = max(orphans, countChildren(init, "sleep"))
	}
	time.Sleep(100 * time.Millisecond)
	ks, fs := keep.Stop(), fresh.Stop()
	t.Logf("keep-alive: %v", ks)
	t.Logf("new-conn:   %v", fs)
	assert.Zero(t, ks.Failed, "failed keep-alive requests: %v", ks.Errors)
	assert.Zero(t, fs.Failed, "failed new-connection requests: %v", fs.Errors)
	assert.Positive(t, orphans, "no orphan ever reached the supervisor: the test proves nothing")
	var zombies []int
	assert.Eventually(t, func() bool {
		zombies = zombies[:0]
		for pid := range procfs.Children(init) {
			if procfs.State(pid) == 'Z' {
				zombies = append(zombies, pid)
			}
		}
		return len(zombies) == 0 && countChildren(init, "sleep") == 0
	}, 10*time.Second, 10*time.Millisecond, "zombies left under the supervisor")
	assert.Empty(t, zombies, "zombies left under the supervisor")
	t.Logf("%d upgrades as PID 1: requests %d, failed %d; orphans seen at once up to %d, zombies left %d",
		n, ks.Requests+fs.Requests, ks.Failed+fs.Failed, orphans, len(zombies))

	// SIGTERM to the namespace's init: the worker drains, the supervisor
	// exits 0 — and the namespace ends.
	require.NoError(t, syscall.Kill(init, syscall.SIGTERM))
	require.Eventually(t, func() bool { return !harness.Alive(init) }, 20*time.Second, 10*time.Millisecond)
}

// countChildren counts the children of pid whose command is comm.
func countChildren(pid int, comm string) int {
	n := 0
	for c := range procfs.Children(pid) {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", c)); err == nil && strings.TrimSpace(string(b)) == comm {
			n++
		}
	}
	return n
}

// TestContainerPID1Refuses: a handoff server that is itself PID 1 of its
// namespace says at start that it will refuse upgrades, and refuses them —
// by signal and by the control socket, which says what to do — while it
// keeps serving: an upgrade would end the namespace, and the service.
func TestContainerPID1Refuses(t *testing.T) {
	dir := t.TempDir()
	addr, err := harness.FreePort()
	require.NoError(t, err)
	ctl := filepath.Join(dir, "ctl.sock")
	hs, init := inNamespace(t, dir, bins.v1, "-addr", addr, "-control", ctl)
	s := &server{t: t, addr: addr}
	require.Eventually(t, func() bool { _, err := s.get(); return err == nil }, 20*time.Second, 10*time.Millisecond)
	s.requireAnswer("v1", 1)
	assert.Contains(t, hs.Log(), "upgrades are refused")

	require.NoError(t, syscall.Kill(init, syscall.SIGHUP))
	require.Eventually(t, func() bool { return strings.Contains(hs.Log(), "upgrade signal refused") }, 10*time.Second, 10*time.Millisecond)
	code, _, stderr := runCLI(t, nil, "upgrade", "-control", ctl)
	assert.Equal(t, 1, code, stderr)
	assert.Contains(t, stderr, "refused")
	assert.Contains(t, stderr, "PID 1 of a PID namespace")
	assert.Contains(t, stderr, "handoff run")
	s.requireAnswer("v1", 1)
	assert.True(t, harness.Alive(init))
	resp, err := http.Get("http://" + addr + "/")
	require.NoError(t, err)
	resp.Body.Close()
}
