//go:build linux

package integration_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/handoff-go/handoff/internal/harness"
)

// TestSocketActivation starts httpserver the way systemd does, through
// Debian's systemd-socket-activate: the first generation adopts the
// socket it was given (by its address: systemd names sockets after the
// unit) instead of binding its own, and hot upgrades hand that same socket
// on, under load, with nothing lost.
func TestSocketActivation(t *testing.T) {
	activate, err := exec.LookPath("systemd-socket-activate")
	if err != nil {
		requireTool(t, "systemd-socket-activate not installed (Debian package systemd; .ci/run installs it)")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "httpserver")
	require.NoError(t, harness.Install(bins.v1, bin))
	addr, err := harness.FreePort()
	require.NoError(t, err)
	pidPath := filepath.Join(dir, "app.pid")
	hs, err := harness.Start(activate, pidPath, filepath.Join(dir, "server.log"),
		"-l", addr, bin, "-addr", addr, "-pidfile", pidPath)
	require.NoError(t, err)
	s := &server{Server: hs, t: t, dir: dir, bin: bin, addr: addr}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		assert.NoError(t, hs.Stop(ctx))
		if t.Failed() {
			t.Logf("server log:\n%s", hs.Log())
		}
	})
	// systemd-socket-activate starts the server at the first connection,
	// which waits in the socket's queue meanwhile and is then answered.
	var body string
	require.Eventually(t, func() bool { // until systemd-socket-activate has bound
		body, err = s.get()
		return err == nil
	}, 10*time.Second, 10*time.Millisecond, "no answer through systemd-socket-activate")
	assert.Contains(t, body, "version=v1")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	pid, err := hs.WaitPID(ctx, 0)
	require.NoError(t, err)
	assert.Equal(t, hs.Cmd.Process.Pid, pid, "systemd-socket-activate execs the server in its own place")
	s.requireAnswer("v1", pid)

	l := startLoad(t, addr, 16)
	for i, b := range []string{bins.v2, bins.v1, bins.v2} {
		newPID, _ := s.upgrade(b, syscall.SIGHUP)
		s.requireAnswer([]string{"v2", "v1", "v2"}[i], newPID)
	}
	_, failed := l.stop(t)
	assert.Zero(t, failed)
}
