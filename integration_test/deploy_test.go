//go:build linux

package integration_test

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/handoff-go/handoff/internal/control"
	"github.com/handoff-go/handoff/internal/harness"
	"github.com/handoff-go/handoff/pidfile"
)

// TestCLIExitStatus: every command answers -h with status 0; `handoff
// version` says what it is; an upgrade whose verdict does not come in time
// exits 3 (and the upgrade goes on); -json prints the verdict.
func TestCLIExitStatus(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"help"}, {"upgrade", "-h"}, {"status", "-h"}, {"run", "-h"}} {
		code, _, stderr := runCLI(t, nil, args...)
		assert.Equal(t, 0, code, "handoff %v: %s", args, stderr)
	}
	code, stdout, _ := runCLI(t, nil, "version")
	assert.Equal(t, 0, code)
	assert.True(t, strings.HasPrefix(stdout, "handoff dev ("), stdout)

	sock := filepath.Join(t.TempDir(), "app.sock")
	s := startServer(t, bins.v1, "", "-upgrade-timeout", "3s", "-control", sock)
	pid, err := s.WaitPID(t.Context(), 0)
	require.NoError(t, err)
	hang := filepath.Join(s.dir, "hang.sh")
	require.NoError(t, os.WriteFile(hang, []byte("#!/bin/sh\nexec sleep 300\n"), 0o755))
	require.NoError(t, harness.Install(hang, s.bin))
	code, stdout, stderr := runCLI(t, nil, "upgrade", "-control", sock, "-timeout", "300ms", "-json")
	assert.Equal(t, 3, code, stderr)
	assert.Contains(t, stderr, "no verdict within 300ms; the upgrade may still complete")
	var res control.UpgradeResult
	require.NoError(t, json.Unmarshal([]byte(stdout), &res), stdout)
	assert.False(t, res.OK)
	// The upgrade went on, and failed on its own: the status says so.
	require.Eventually(t, func() bool {
		code, stdout, _ := runCLI(t, nil, "status", "-control", sock, "-json")
		var st control.Status
		return code == 0 && json.Unmarshal([]byte(stdout), &st) == nil && st.LastUpgrade != nil && st.LastUpgrade.Stage == "timeout"
	}, 20*time.Second, 50*time.Millisecond)
	s.requireAnswer("v1", pid)

	require.NoError(t, harness.Install(bins.v2, s.bin))
	code, stdout, stderr = runCLI(t, nil, "upgrade", "-control", sock, "-json")
	require.Equal(t, 0, code, stderr)
	require.NoError(t, json.Unmarshal([]byte(stdout), &res), stdout)
	assert.True(t, res.OK)
	assert.Equal(t, pid, res.OldPID)
	got, err := s.WaitPID(t.Context(), pid)
	require.NoError(t, err)
	assert.Equal(t, got, res.NewPID)

	// By pidfile, no verdict in time is 3 as well.
	require.NoError(t, harness.Install(hang, s.bin))
	code, _, stderr = runCLI(t, nil, "upgrade", "-pidfile", s.PIDFile, "-timeout", "300ms")
	assert.Equal(t, 3, code, stderr)
	assert.Contains(t, stderr, "no verdict within 300ms")
}

// TestConcurrentVerdicts: many `handoff upgrade` calls at once, while good
// and failing builds take turns: each call's exit status and printed PID
// are what happened to its own attempt — 0 with a PID that took over, 1
// for a failure or a refusal while the PID it names still serves — and the
// status reports the last attempt that ran, never a refusal.
func TestConcurrentVerdicts(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "app.sock")
	s := startServer(t, bins.v1, "", "-upgrade-timeout", "5s", "-control", sock)
	pid, err := s.WaitPID(t.Context(), 0)
	require.NoError(t, err)
	l := startLoad(t, s.addr, 8)
	crash := filepath.Join(s.dir, "crash.sh")
	require.NoError(t, os.WriteFile(crash, []byte("#!/bin/sh\necho 'panic: config broken' >&2\nexit 3\n"), 0o755))
	const calls = 6
	took := map[int]bool{} // every PID a call saw take over
	for round := range 6 {
		good := round%2 == 0
		bin, version := crash, ""
		if good {
			bin, version = bins.v2, "v2"
			if round%4 == 2 {
				bin, version = bins.v1, "v1"
			}
		}
		require.NoError(t, harness.Install(bin, s.bin))
		type outcome struct {
			code           int
			stdout, stderr string
		}
		out := make([]outcome, calls)
		var wg sync.WaitGroup
		for i := range out {
			wg.Add(1)
			go func() {
				defer wg.Done()
				code, stdout, stderr := runCLI(t, nil, "upgrade", "-control", sock)
				out[i] = outcome{code, stdout, stderr}
			}()
		}
		wg.Wait()
		live, err := s.WaitPID(t.Context(), 0)
		require.NoError(t, err)
		ran := 0
		for i, o := range out {
			switch o.code {
			case 0:
				require.True(t, good, "round %d call %d: a failing build upgraded: %s", round, i, o.stderr)
				newPID, err := strconv.Atoi(strings.TrimSpace(o.stdout))
				require.NoError(t, err, o.stdout)
				assert.False(t, took[newPID], "round %d: PID %d reported twice", round, newPID)
				took[newPID] = true
				ran++
			case 1:
				switch {
				case strings.Contains(o.stderr, "refused"):
					// Another call's upgrade ran, or had already handed
					// over when this one reached the old generation.
					assert.Regexp(t, "another upgrade is in progress|already handed over", o.stderr, "round %d call %d", round, i)
					continue
				default:
					require.False(t, good, "round %d call %d: a good build failed: %s", round, i, o.stderr)
					assert.Contains(t, o.stderr, "exited with status 3 before it was ready")
					ran++
				}
				_, servedBy, ok := strings.Cut(o.stderr, "; PID ")
				require.True(t, ok, o.stderr)
				n, err := strconv.Atoi(strings.Fields(servedBy)[0])
				require.NoError(t, err)
				assert.Equal(t, live, n, "round %d: the PID said to serve is the live one", round)
			default:
				t.Fatalf("round %d call %d: exit %d: %s", round, i, o.code, o.stderr)
			}
		}
		require.Positive(t, ran, "round %d: no call ran an upgrade", round)
		if good {
			assert.True(t, took[live], "round %d: the live PID %d is one a call reported", round, live)
			s.requireAnswer(version, live)
		} else {
			assert.Equal(t, pid, live, "round %d: the failing build left the old one live", round)
		}
		pid = live
		code, stdout, _ := runCLI(t, nil, "status", "-control", sock, "-json")
		require.Equal(t, 0, code)
		var st control.Status
		require.NoError(t, json.Unmarshal([]byte(stdout), &st))
		if !good { // a new generation has no upgrade of its own yet
			require.NotNil(t, st.LastUpgrade)
			assert.False(t, st.LastUpgrade.Refused, "the status reports a refusal as the last upgrade")
			assert.Equal(t, "exited", st.LastUpgrade.Stage)
		}
	}
	_, failed := l.stop(t)
	assert.Zero(t, failed)
}

// TestStartScript: a deploy that installs releases side by side and names
// the current one in a file starts the server through a script that execs
// it (-path run.sh): each upgrade runs whatever the file names then.
func TestStartScript(t *testing.T) {
	dir := t.TempDir()
	for _, v := range []string{"v1", "v2"} {
		require.NoError(t, os.MkdirAll(filepath.Join(dir, "releases", v), 0o755))
		require.NoError(t, harness.Install(map[string]string{"v1": bins.v1, "v2": bins.v2}[v], filepath.Join(dir, "releases", v, "httpserver")))
	}
	current := filepath.Join(dir, "CURRENT")
	require.NoError(t, os.WriteFile(current, []byte("v1"), 0o644))
	run := filepath.Join(dir, "run.sh")
	require.NoError(t, os.WriteFile(run, []byte("#!/bin/sh\nexec \"$(dirname \"$0\")/releases/$(cat \"$(dirname \"$0\")/CURRENT\")/httpserver\" \"$@\"\n"), 0o755))
	s := startServer(t, "", run, "-path", run)
	pid, err := s.WaitPID(t.Context(), 0)
	require.NoError(t, err)
	s.requireAnswer("v1", pid)
	for _, v := range []string{"v2", "v1", "v2"} {
		require.NoError(t, os.WriteFile(current, []byte(v), 0o644))
		pid, _ = s.upgrade("", syscall.SIGHUP)
		s.requireAnswer(v, pid)
	}
}

// TestWrapperPinsNoBuild: a generation that a wrapper script exec'd (its
// argv[0] is the binary the script chose) still starts, at its own
// upgrade, the path its parent started — the wrapper — not that binary.
func TestWrapperPinsNoBuild(t *testing.T) {
	dir := t.TempDir()
	v2 := filepath.Join(dir, "v2", "httpserver")
	require.NoError(t, os.MkdirAll(filepath.Dir(v2), 0o755))
	require.NoError(t, harness.Install(bins.v2, v2))
	s := startServer(t, bins.v1, "")
	// The deploy puts a wrapper at the served path: it execs v2.
	wrapper := filepath.Join(dir, "wrapper.sh")
	require.NoError(t, os.WriteFile(wrapper, []byte("#!/bin/sh\nexec "+v2+" \"$@\"\n"), 0o755))
	pid, _ := s.upgrade(wrapper, syscall.SIGHUP)
	s.requireAnswer("v2", pid)
	// The next deploy puts a binary there again: it is what runs next.
	for _, v := range []string{"v1", "v2", "v1"} {
		pid, _ = s.upgrade(map[string]string{"v1": bins.v1, "v2": bins.v2}[v], syscall.SIGHUP)
		s.requireAnswer(v, pid)
	}
}

// TestEnvFile: -env-file is read at each upgrade, so a deploy changes the
// next generation's settings by changing the file; a file that cannot be
// read fails the upgrade before anything starts, and the old one serves.
func TestEnvFile(t *testing.T) {
	envFile := filepath.Join(t.TempDir(), "app.env")
	require.NoError(t, os.WriteFile(envFile, []byte("# settings\nAPP_MODE=blue\n"), 0o644))
	s := startServer(t, bins.v1, "", "-env-file", envFile)
	pid, err := s.WaitPID(t.Context(), 0)
	require.NoError(t, err)
	env := func() string {
		resp, err := http.Get("http://" + s.addr + "/env?name=APP_MODE")
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	assert.Equal(t, "", env(), "the first generation was started without the file")
	for _, mode := range []string{"green", `"red"`, "export APP_MODE=blue"} {
		line := "APP_MODE=" + mode
		if strings.HasPrefix(mode, "export ") {
			line = mode
		}
		require.NoError(t, os.WriteFile(envFile, []byte(line+"\n"), 0o644))
		pid, _ = s.upgrade("", syscall.SIGHUP)
		want := strings.Trim(strings.TrimPrefix(mode, "export APP_MODE="), `"`)
		assert.Equal(t, want, env(), "after the upgrade, the file's value")
	}
	require.NoError(t, os.WriteFile(envFile, []byte("not a setting\n"), 0o644))
	require.NoError(t, syscall.Kill(pid, syscall.SIGHUP))
	s.waitLog("want KEY=VALUE", 1)
	live, err := pidfile.Read(s.PIDFile)
	require.NoError(t, err)
	assert.Equal(t, pid, live)
	s.requireAnswer("v1", pid)
}
