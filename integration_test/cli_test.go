//go:build linux

package integration_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/handoff-go/handoff/internal/control"
	"github.com/handoff-go/handoff/internal/harness"
)

var cli struct {
	once sync.Once
	path string
	err  error
}

// handoffCLI builds cmd/handoff once.
func handoffCLI(t *testing.T) string {
	t.Helper()
	cli.once.Do(func() {
		dir, err := os.MkdirTemp("", "handoff-cli-")
		if err != nil {
			cli.err = err
			return
		}
		cli.path = filepath.Join(dir, "handoff")
		cli.err = harness.Build(t.Context(), "./cmd/handoff", "dev", cli.path)
	})
	require.NoError(t, cli.err)
	return cli.path
}

// runCLI runs the handoff command and returns its exit status and output.
func runCLI(t *testing.T, cred *syscall.Credential, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(handoffCLI(t), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errorsAs(err, &ee) {
		t.Fatalf("handoff %v: %v", args, err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errb.String()
}

func errorsAs(err error, target **exec.ExitError) bool {
	e, ok := err.(*exec.ExitError)
	if ok {
		*target = e
	}
	return ok
}

// TestCLIVerdicts: `handoff upgrade -control` exits 0 with the new PID
// for a good build, 1 with the reason for a build that exits or hangs
// (the old one serving every request meanwhile), 2 for a socket nobody
// answers on.
func TestCLIVerdicts(t *testing.T) {
	ctx := t.Context()
	sock := filepath.Join(t.TempDir(), "app.sock")
	s := startServer(t, bins.v1, "", "-upgrade-timeout", "2s", "-control", sock)
	pid, err := s.WaitPID(ctx, 0)
	require.NoError(t, err)
	l := startLoad(t, s.addr, 16)

	crash := filepath.Join(s.dir, "crash.sh")
	require.NoError(t, os.WriteFile(crash, []byte("#!/bin/sh\necho 'panic: config broken' >&2\nexit 3\n"), 0o755))
	hang := filepath.Join(s.dir, "hang.sh")
	require.NoError(t, os.WriteFile(hang, []byte("#!/bin/sh\nexec sleep 300\n"), 0o755))
	for _, c := range []struct{ name, bin, want string }{
		{"exits 3", crash, "exited with status 3 before it was ready"},
		{"hangs", hang, "was not ready in time"},
	} {
		require.NoError(t, harness.Install(c.bin, s.bin))
		code, _, stderr := runCLI(t, nil, "upgrade", "-control", sock)
		assert.Equal(t, 1, code, "%s: %s", c.name, stderr)
		assert.Contains(t, stderr, c.want, c.name)
		assert.Contains(t, stderr, "PID "+strconv.Itoa(pid)+" still serves", c.name)
		s.requireAnswer("v1", pid)
	}
	assert.Contains(t, s.Log(), "panic: config broken")

	require.NoError(t, harness.Install(bins.v2, s.bin))
	code, stdout, stderr := runCLI(t, nil, "upgrade", "-control", sock)
	require.Equal(t, 0, code, stderr)
	newPID, err := strconv.Atoi(strings.TrimSpace(stdout))
	require.NoError(t, err, stdout)
	got, err := s.WaitPID(ctx, 0)
	require.NoError(t, err)
	assert.Equal(t, newPID, got, "the printed PID is the one in the pidfile")
	s.requireAnswer("v2", newPID)

	code, stdout, stderr = runCLI(t, nil, "status", "-control", sock, "-json")
	require.Equal(t, 0, code, stderr)
	var st control.Status
	require.NoError(t, json.Unmarshal([]byte(stdout), &st))
	assert.Equal(t, newPID, st.PID)
	assert.Equal(t, "v2", st.Version)
	assert.Equal(t, 2, st.Generation)

	code, _, stderr = runCLI(t, nil, "upgrade", "-control", filepath.Join(s.dir, "nobody.sock"))
	assert.Equal(t, 2, code, stderr)
	code, _, _ = runCLI(t, nil, "upgrade")
	assert.Equal(t, 2, code, "usage error")

	_, failed := l.stop(t)
	assert.Zero(t, failed)
}

// TestControlSocketGuards: the socket is 0600, a client of another UID is
// refused by the kernel's word (SO_PEERCRED) even when the mode would let
// it in, and malformed or oversized requests get an error reply without
// disturbing the server.
func TestControlSocketGuards(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "app.sock")
	s := startServer(t, bins.v1, "", "-control", sock)
	pid, err := s.WaitPID(t.Context(), 0)
	require.NoError(t, err)
	fi, err := os.Stat(sock)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	for _, line := range []string{"not json\n", `{"cmd":"reboot"}` + "\n", strings.Repeat("x", 10000) + "\n"} {
		c, err := net.Dial("unix", sock)
		require.NoError(t, err)
		c.Write([]byte(line))
		reply, err := bufio.NewReader(c).ReadString('\n')
		c.Close()
		require.NoError(t, err)
		var resp control.Response
		require.NoError(t, json.Unmarshal([]byte(reply), &resp))
		assert.NotEmpty(t, resp.Error, "request %.20q", line)
	}
	s.requireAnswer("v1", pid)

	requireRoot(t, "a client under another UID")
	nobody := &syscall.Credential{Uid: 65534, Gid: 65534}
	// Let nobody reach the binary and the socket's directory, so that
	// only the socket's own guards are tested.
	require.NoError(t, os.Chmod(filepath.Dir(handoffCLI(t)), 0o755))
	for d := filepath.Dir(sock); d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		require.NoError(t, os.Chmod(d, 0o755))
	}
	// The mode keeps other users out...
	code, _, stderr := runCLI(t, nobody, "status", "-control", sock)
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr, "permission denied")
	// ...and so does the server when the mode would not.
	require.NoError(t, os.Chmod(sock, 0o666))
	code, _, stderr = runCLI(t, nobody, "status", "-control", sock)
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr, "client UID 65534 is neither")
	s.requireAnswer("v1", pid)
}

// TestCLIUpgradeByPidfile: without a control socket, the verdict comes by
// observation: 0 and the new PID, or 1 when the new generation was seen to
// exit (no reason can be known that way).
func TestCLIUpgradeByPidfile(t *testing.T) {
	s := startServer(t, bins.v1, "", "-upgrade-timeout", "2s")
	pid, err := s.WaitPID(t.Context(), 0)
	require.NoError(t, err)
	crash := filepath.Join(s.dir, "crash.sh")
	require.NoError(t, os.WriteFile(crash, []byte("#!/bin/sh\nexit 3\n"), 0o755))
	require.NoError(t, harness.Install(crash, s.bin))
	code, _, stderr := runCLI(t, nil, "upgrade", "-pidfile", s.PIDFile, "-timeout", "10s")
	assert.Equal(t, 1, code, stderr)
	assert.Regexp(t, `the new generation (\(PID \d+\) )?exited before it took over`, stderr)
	assert.Contains(t, stderr, "by signal the reason cannot be known")
	assert.Contains(t, stderr, "PID "+strconv.Itoa(pid)+" still serves")
	s.requireAnswer("v1", pid)

	require.NoError(t, harness.Install(bins.v2, s.bin))
	code, stdout, stderr := runCLI(t, nil, "upgrade", "-pidfile", s.PIDFile, "-signal", "SIGHUP")
	require.Equal(t, 0, code, stderr)
	newPID, err := strconv.Atoi(strings.TrimSpace(stdout))
	require.NoError(t, err)
	s.requireAnswer("v2", newPID)
}

// TestDeployScript runs examples/deploy/deploy.sh as a deploy would: it
// builds, places the binary, upgrades through the control socket, and
// exits with handoff's verdict.
func TestDeployScript(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the example")
	}
	appDir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(appDir, "bin"), 0o755))
	sock := filepath.Join(appDir, "app.sock")
	bin := filepath.Join(appDir, "bin", "httpserver")
	require.NoError(t, harness.Install(bins.v1, bin))
	s := startServer(t, "", bin, "-control", sock)
	root, err := harness.ModuleRoot()
	require.NoError(t, err)
	deploy := func(dir string) (int, string) {
		cmd := exec.Command("sh", filepath.Join(root, "examples", "deploy", "deploy.sh"), dir)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "HANDOFF="+handoffCLI(t), "VERSION=v9")
		out, _ := cmd.CombinedOutput()
		return cmd.ProcessState.ExitCode(), string(out)
	}
	code, out := deploy(appDir)
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "deployed v9: PID ")
	pid, err := s.WaitPID(t.Context(), 0)
	require.NoError(t, err)
	s.requireAnswer("v9", pid)
}
