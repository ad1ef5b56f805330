//go:build unix

package starter

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/handoff-go/handoff/fdpass"
	"github.com/handoff-go/handoff/internal/wire"
)

// privateTmp points TMPDIR, where Start makes the notify socket's
// directory, at an empty directory of the test's, and returns it.
func privateTmp(t *testing.T) string {
	dir := t.TempDir()
	t.Setenv("TMPDIR", dir)
	return dir
}

// requireEmpty asserts that nothing is left in dir.
func requireEmpty(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	assert.Empty(t, names, "left behind in %s", dir)
}

// start starts cfg; a test that fails early still stops and settles the
// program.
func start(t *testing.T, cfg Config) *Process {
	t.Helper()
	p, err := Start(cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		p.Stop(time.Second)
		<-p.Settled()
	})
	return p
}

// wait waits for ch; the bound only keeps a broken test from hanging.
func wait(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(20 * time.Second):
		t.Fatalf("%s: not after 20s", what)
	}
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// TestStartServes starts a systemd-style program that checks LISTEN_PID,
// adopts its listener with fdpass.Inherit, answers on it and says READY=1
// with a STATUS=, and then stops it.
func TestStartServes(t *testing.T) {
	exe, err := os.Executable()
	require.NoError(t, err)
	t.Run("sh", func(t *testing.T) { testStartServes(t, nil) })
	t.Run("self", func(t *testing.T) { testStartServes(t, []string{exe, shimArg}) })
}

func testStartServes(t *testing.T, shim []string) {
	tmp := privateTmp(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	name := wire.Key("tcp", ln.Addr().String())
	cwd := t.TempDir()
	var stdout, stderr syncBuffer
	cfg := helperConfig(t, "serve",
		// All replaced or dropped.
		"LISTEN_FDS=7", "LISTEN_PID=1", "HANDOFF=v1;control=", "NOTIFY_SOCKET=/run/systemd/notify",
		"WATCHDOG_USEC=5000000", "WATCHDOG_PID=1",
		"A.B=1") // not a shell identifier
	cfg.Shim = shim
	cfg.Args = []string{"a b", "$HOME", "", `"q"`}
	cfg.Dir = cwd
	cfg.Files = []fdpass.Named{{Name: name, Conn: ln.(*net.TCPListener)}}
	cfg.Stdout, cfg.Stderr = &stdout, &stderr
	p := start(t, cfg)

	wait(t, p.Ready(), "READY=1")
	assert.Equal(t, "serving "+name, p.Status())
	assert.False(t, closed(p.Exited()))
	assert.Nil(t, p.State())
	assert.Equal(t, p.PID(), answer(t, ln.Addr()), "the program answers on the socket it was handed")

	p.Stop(10 * time.Second)
	p.Stop(10 * time.Second) // once is enough; twice is harmless
	wait(t, p.Settled(), "settled after SIGTERM")
	require.True(t, closed(p.Exited()))
	require.NotNil(t, p.State())
	assert.Equal(t, 0, p.State().ExitCode(), "stderr: %s", stderr.String())
	assert.Equal(t, "with status 0", How(p.State()))

	r := report(stdout.String())
	pid := strconv.Itoa(p.PID())
	assert.Equal(t, pid, r["pid"], "the program is the process started, not a shim")
	assert.Equal(t, pid, r["LISTEN_PID"])
	assert.Equal(t, "1", r["LISTEN_FDS"])
	assert.Equal(t, name, r["LISTEN_FDNAMES"])
	assert.Equal(t, "<unset>", r["after_inherit_LISTEN_PID"], "Inherit unsets the variables")
	assert.True(t, strings.HasPrefix(r["NOTIFY_SOCKET"], tmp+string(filepath.Separator)), "a private socket: %s", r["NOTIFY_SOCKET"])
	assert.Equal(t, "<unset>", r["WATCHDOG_USEC"])
	assert.Equal(t, "<unset>", r["WATCHDOG_PID"])
	assert.Equal(t, "<unset>", r["HANDOFF"])
	if shim != nil {
		assert.Equal(t, "1", r["A.B"], "without a shell every variable reaches the program")
	} // dash, a usual /bin/sh, drops it (documented)
	assert.Equal(t, fmt.Sprintf("%q", cfg.Args), r["args"])
	want, err := filepath.EvalSymlinks(cwd)
	require.NoError(t, err)
	got, err := filepath.EvalSymlinks(r["cwd"])
	require.NoError(t, err)
	assert.Equal(t, want, got)
	requireEmpty(t, tmp)

	// The caller's listener is untouched.
	c, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	c.Close()
	a, err := ln.Accept()
	require.NoError(t, err)
	a.Close()
}

// TestStartExitStatus: a program that fails at start exits 3 after writing
// to stderr and sending a STATUS=: all of it is there once Settled.
func TestStartExitStatus(t *testing.T) {
	tmp := privateTmp(t)
	for _, tailStderr := range []bool{true, false} {
		t.Run(fmt.Sprintf("TailStderr=%v", tailStderr), func(t *testing.T) {
			var stderr syncBuffer
			cfg := helperConfig(t, "fail")
			cfg.Stderr, cfg.TailStderr = &stderr, tailStderr
			p := start(t, cfg)
			wait(t, p.Settled(), "settled")
			require.True(t, closed(p.Exited()))
			require.NotNil(t, p.State())
			assert.Equal(t, 3, p.State().ExitCode())
			assert.Equal(t, "with status 3", How(p.State()))
			assert.Equal(t, "failing: bad config", p.Status(), "a STATUS= sent just before the exit is read")
			assert.False(t, closed(p.Ready()))
			assert.Equal(t, "boom: cannot parse config\n", stderr.String())
			if tailStderr {
				assert.Equal(t, "boom: cannot parse config\n", p.StderrTail())
			} else {
				assert.Empty(t, p.StderrTail())
			}
			requireEmpty(t, tmp)
		})
	}
}

// TestStartIgnoresOtherSenders: READY=1 from a process the program forked
// does not count where the kernel tells the sender.
func TestStartIgnoresOtherSenders(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("only Linux tells who sent a datagram")
	}
	privateTmp(t)
	var logs syncBuffer
	cfg := helperConfig(t, "fork")
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	cfg.Stderr = os.Stderr
	p := start(t, cfg)
	// The program says this after its sub-process's READY=1 was sent, so
	// the READY=1 was read first.
	require.Eventually(t, func() bool { return p.Status() == "sub-process sent READY=1" }, 20*time.Second, 5*time.Millisecond)
	assert.False(t, closed(p.Ready()), "READY=1 from another process")
	assert.Contains(t, logs.String(), "ignored a notify message from another process")
	p.Stop(10 * time.Second)
	wait(t, p.Settled(), "settled")
	assert.Equal(t, "by signal terminated", How(p.State()))
	assert.False(t, closed(p.Ready()))
}

// TestStopKills: a program that ignores SIGTERM is killed after the grace.
func TestStopKills(t *testing.T) {
	privateTmp(t)
	var logs syncBuffer
	cfg := helperConfig(t, "stubborn")
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	p := start(t, cfg)
	wait(t, p.Ready(), "READY=1") // sent once SIGTERM is ignored
	p.Stop(100 * time.Millisecond)
	wait(t, p.Settled(), "settled after SIGKILL")
	assert.Equal(t, "by signal killed", How(p.State()))
	assert.Contains(t, logs.String(), "did not exit in time after SIGTERM; killing it")
	p.Stop(time.Second) // after the exit: nothing
}

func TestReadyDelay(t *testing.T) {
	privateTmp(t)
	t.Run("running", func(t *testing.T) {
		cfg := helperConfig(t, "quiet")
		cfg.ReadyDelay = 50 * time.Millisecond
		p := start(t, cfg)
		wait(t, p.Ready(), "ready after the delay")
		p.Stop(10 * time.Second)
		wait(t, p.Settled(), "settled")
		assert.Equal(t, "by signal terminated", How(p.State()))
	})
	t.Run("exited first", func(t *testing.T) {
		cfg := helperConfig(t, "exit0")
		cfg.ReadyDelay = time.Hour
		p := start(t, cfg)
		wait(t, p.Settled(), "settled")
		assert.Equal(t, "with status 0", How(p.State()))
		assert.False(t, closed(p.Ready()), "a program that exited is never ready by delay")
	})
}

// TestCloseNotify removes the notify socket and its directory at once,
// while the program runs.
func TestCloseNotify(t *testing.T) {
	tmp := privateTmp(t)
	p := start(t, helperConfig(t, "idle"))
	wait(t, p.Ready(), "READY=1")
	sock, ok := strings.CutPrefix(p.Status(), "notify=")
	require.True(t, ok, p.Status())
	require.Equal(t, tmp, filepath.Dir(filepath.Dir(sock)))
	fi, err := os.Stat(filepath.Dir(sock))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), fi.Mode().Perm(), "only this user reaches the socket")

	p.CloseNotify()
	p.CloseNotify()
	requireEmpty(t, tmp)
	assert.False(t, closed(p.Exited()))
	p.Stop(10 * time.Second)
	wait(t, p.Settled(), "settled")
	requireEmpty(t, tmp)
}

// TestStdio: stdin from a reader and stdout and stderr into one writer,
// none of them files, go through the starter's own pipes; the writer gets
// one Write at a time (the race detector checks a plain bytes.Buffer).
func TestStdio(t *testing.T) {
	privateTmp(t)
	for _, tailStderr := range []bool{false, true} {
		t.Run(fmt.Sprintf("TailStderr=%v", tailStderr), func(t *testing.T) {
			var out bytes.Buffer
			cfg := helperConfig(t, "cat")
			cfg.Stdin = strings.NewReader("from stdin\n")
			cfg.Stdout, cfg.Stderr, cfg.TailStderr = &out, &out, tailStderr
			p := start(t, cfg)
			wait(t, p.Settled(), "settled")
			assert.Equal(t, "with status 0", How(p.State()))
			if tailStderr {
				// Two pipes: the order between them is lost.
				assert.ElementsMatch(t, []string{"from stdin", "and a line on stderr", ""}, strings.Split(out.String(), "\n"))
				assert.Equal(t, "and a line on stderr\n", p.StderrTail())
			} else {
				assert.Equal(t, "from stdin\nand a line on stderr\n", out.String(), "one pipe keeps the order")
			}
		})
	}
}

// TestExitedWithHeldPipes: a process the program started keeps its stdout
// and stderr open; the program's exit is seen at once all the same, and
// Settled does not wait for the heir.
func TestExitedWithHeldPipes(t *testing.T) {
	privateTmp(t)
	for _, c := range []struct {
		name   string
		stdout bool // also a writer that is not a file
	}{{"stderr tail", false}, {"stdout and stderr tail", true}} {
		t.Run(c.name, func(t *testing.T) {
			var out syncBuffer
			cfg := Config{
				Path:       "/bin/sh",
				Args:       []string{"-c", `echo started; sleep 60 & echo $! >&2; exit 4`},
				Stderr:     &out,
				TailStderr: true,
			}
			if c.stdout {
				cfg.Stdout = &out
			}
			p := start(t, cfg)
			var heir int
			require.Eventually(t, func() bool {
				heir, _ = strconv.Atoi(strings.TrimSpace(p.StderrTail()))
				return heir > 0
			}, 20*time.Second, 5*time.Millisecond, "the heir's PID on stderr")
			t.Cleanup(func() { syscall.Kill(heir, syscall.SIGKILL) })
			wait(t, p.Exited(), "exited while the heir holds the pipes")
			assert.Equal(t, "with status 4", How(p.State()))
			wait(t, p.Settled(), "settled while the heir holds the pipes")
			if c.stdout {
				assert.Contains(t, out.String(), "started\n")
			}
		})
	}
}

func TestStartErrors(t *testing.T) {
	tmp := privateTmp(t)
	_, err := Start(Config{Path: filepath.Join(t.TempDir(), "missing")})
	assert.ErrorIs(t, err, os.ErrNotExist)
	_, err = Start(Config{Path: "no-such-program-in-path-for-starter"})
	assert.ErrorIs(t, err, exec.ErrNotFound)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	cfg := helperConfig(t, "exit0")
	cfg.Files = []fdpass.Named{{Name: "a:b", Conn: ln.(*net.TCPListener)}}
	cfg.Stdin, cfg.Stdout, cfg.TailStderr = strings.NewReader(""), &bytes.Buffer{}, true
	_, err = Start(cfg)
	assert.ErrorContains(t, err, "':'")
	requireEmpty(t, tmp)
}

func TestHow(t *testing.T) {
	assert.Equal(t, "in an unknown way", How(nil))
	for _, c := range []struct{ script, want string }{
		{"exit 0", "with status 0"},
		{"exit 5", "with status 5"},
		{"kill -KILL $$", "by signal killed"},
		{"kill -TERM $$", "by signal terminated"},
	} {
		cmd := exec.Command("/bin/sh", "-c", c.script)
		_ = cmd.Run()
		assert.Equal(t, c.want, How(cmd.ProcessState), c.script)
	}
}

// TestNoLeaks: many starts, ready and stopped or failed, leave as many
// descriptors and goroutines as before them.
func TestNoLeaks(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("counts /proc/self/fd")
	}
	tmp := privateTmp(t)
	fds := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		require.NoError(t, err)
		return len(ents)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	once := func(i int) {
		name := "idle"
		if i%3 == 2 {
			name = "fail"
		}
		cfg := helperConfig(t, name)
		cfg.Files = []fdpass.Named{{Name: "l", Conn: ln.(*net.TCPListener)}}
		cfg.Stdout, cfg.TailStderr = &bytes.Buffer{}, true
		if i%2 == 0 {
			cfg.Stdin = strings.NewReader("")
		}
		p, err := Start(cfg)
		require.NoError(t, err)
		if name == "idle" {
			wait(t, p.Ready(), "READY=1")
			p.Stop(10 * time.Second)
		}
		wait(t, p.Settled(), "settled")
	}
	// No garbage collection: an *os.File left unclosed would be closed by
	// its finalizer and hide the leak.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	// Once first, so that lazily created runtime resources exist.
	once(0)
	fd0, g0 := fds(), runtime.NumGoroutine()
	n := 30
	if testing.Short() {
		n = 9
	}
	for i := range n {
		once(i)
	}
	// Polled here, not with assert.Eventually, whose own goroutine would
	// be counted: the last goroutines end just after Settled, and the
	// poller's descriptors come and go.
	var fd1, g1 int
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		fd1, g1 = fds(), runtime.NumGoroutine()
		if fd1 <= fd0 && g1 <= g0 || time.Now().After(deadline) {
			break
		}
	}
	assert.LessOrEqual(t, fd1, fd0, "descriptors after %d starts", n)
	assert.LessOrEqual(t, g1, g0, "goroutines after %d starts", n)
	if fd1 > fd0 {
		ents, _ := os.ReadDir("/proc/self/fd")
		for _, e := range ents {
			l, _ := os.Readlink("/proc/self/fd/" + e.Name())
			t.Logf("fd %s -> %s", e.Name(), l)
		}
	}
	t.Logf("after %d starts (1 in 3 failed): descriptors %d -> %d, goroutines %d -> %d", n, fd0, fd1, g0, g1)
	requireEmpty(t, tmp)
}
