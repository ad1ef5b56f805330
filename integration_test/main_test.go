//go:build linux

// Package integration_test builds the example servers and drives them from
// outside with real processes and real traffic on loopback, as a deploy
// script would, counting every failed request.
package integration_test

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/handoff-go/handoff/internal/harness"
)

var (
	upgradesFlag = flag.Int("upgrades", 0, "upgrades in TestUpgradeUnderLoad (0: 50, or 10 with -short)")
	clientsFlag  = flag.Int("clients", 32, "clients of each kind (keep-alive, new connection) in TestUpgradeUnderLoad")
)

// bins holds the example builds shared by all tests.
var bins struct {
	v1, v2 string
	dying  string // says ready, dies 500ms later
	failed string // reports a failure instead of ready
	slow   string // a good build that takes 1.5s to start
	// crashing goes live and dies 1.5s later; unhealthy serves but fails
	// GET /healthz: builds found bad only after the hand-over.
	crashing, unhealthy string
}

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "handoff-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		bins.v1 = filepath.Join(dir, "httpserver-v1")
		bins.v2 = filepath.Join(dir, "httpserver-v2")
		for v, out := range map[string]string{"v1": bins.v1, "v2": bins.v2} {
			if err := harness.Build(ctx, "./examples/httpserver", v, out); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 2
			}
		}
		bins.dying = filepath.Join(dir, "dying")
		bins.slow = filepath.Join(dir, "slow")
		bins.failed = filepath.Join(dir, "failed")
		bins.crashing = filepath.Join(dir, "crashing")
		bins.unhealthy = filepath.Join(dir, "unhealthy")
		for out, vars := range map[string][]string{
			bins.failed:    {"failReason=config: listen address missing"},
			bins.dying:     {"dieAfterReady=500ms"},
			bins.slow:      {"startDelay=1500ms"},
			bins.crashing:  {"dieAfterReady=1500ms"},
			bins.unhealthy: {"unhealthy=yes"},
		} {
			if err := harness.Build(ctx, "./integration_test/testdata/faulty", filepath.Base(out), out, vars...); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 2
			}
		}
		return m.Run()
	}()
	os.Exit(code)
}

// server is one httpserver under test with its files in a temp dir.
type server struct {
	*harness.Server
	t    *testing.T
	dir  string
	bin  string // the path the server was started with
	addr string
}

// startServer installs first at dir/httpserver (or at binPath if set),
// starts it and waits until it is ready.
func startServer(t *testing.T, first, binPath string, extra ...string) *server {
	t.Helper()
	dir := t.TempDir()
	if binPath == "" {
		binPath = filepath.Join(dir, "httpserver")
		require.NoError(t, harness.Install(first, binPath))
	}
	addr, err := harness.FreePort()
	require.NoError(t, err)
	pidPath := filepath.Join(dir, "app.pid")
	args := append([]string{"-addr", addr, "-pidfile", pidPath}, extra...)
	hs, err := harness.Start(binPath, pidPath, filepath.Join(dir, "server.log"), args...)
	require.NoError(t, err)
	s := &server{Server: hs, t: t, dir: dir, bin: binPath, addr: addr}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		assert.NoError(t, hs.Stop(ctx), "stopping the server")
		assert.NotContains(t, hs.Log(), harness.RaceReport, "a race in the server (race-built in a -race run)")
		if t.Failed() {
			t.Logf("server log:\n%s", hs.Log())
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = hs.WaitPID(ctx, 0)
	require.NoError(t, err)
	return s
}

// get makes one request on a fresh connection and returns the body.
func (s *server) get() (string, error) {
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + s.addr + "/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// requireAnswer asserts the server answers with version and pid.
func (s *server) requireAnswer(version string, pid int) {
	s.t.Helper()
	body, err := s.get()
	require.NoError(s.t, err)
	require.Equal(s.t, fmt.Sprintf("version=%s pid=%d", version, pid), body)
}

// requireOneGeneration asserts exactly one process of the server is alive
// and the pidfile names it.
func (s *server) requireOneGeneration(pid int) {
	s.t.Helper()
	members, err := harness.Group(s.Cmd.Process.Pid)
	require.NoError(s.t, err)
	require.Equal(s.t, []int{pid}, members, "live processes of the server")
}

// upgrade installs bin over the server's binary path (unless bin is
// empty), sends sig and waits for the hand-over.
func (s *server) upgrade(bin string, sig syscall.Signal) (int, time.Duration) {
	s.t.Helper()
	if bin != "" {
		require.NoError(s.t, harness.Install(bin, s.bin))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pid, took, err := s.Upgrade(ctx, sig)
	require.NoError(s.t, err)
	return pid, took
}

// waitLog waits until the server log contains substr n times.
func (s *server) waitLog(substr string, n int) {
	s.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for strings.Count(s.Log(), substr) < n {
		if time.Now().After(deadline) {
			s.t.Fatalf("log never had %q %d times:\n%s", substr, n, s.Log())
		}
		time.Sleep(5 * time.Millisecond)
	}
}
