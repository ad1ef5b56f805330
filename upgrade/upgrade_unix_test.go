//go:build unix

package upgrade

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/handoff-go/handoff/internal/control"
	"github.com/handoff-go/handoff/pidfile"
)

// newTestUpgrader returns a ready Upgrader in the test process whose next
// generation runs helper.
func newTestUpgrader(t testing.TB, helper string, opts Options, env ...string) *Upgrader {
	t.Helper()
	// Under -race, a process sleeps a second at exit unless told not to.
	opts.Env = append(append(os.Environ(), envHelper+"="+helper, "GORACE=atexit_sleep_ms=0"), env...)
	if opts.Stderr == nil {
		opts.Stderr = io.Discard // failing children's words are checked in ChildError.Stderr
	}
	u, err := New(opts)
	require.NoError(t, err)
	t.Cleanup(func() {
		u.Stop()
		closeSuccessor(u)
	})
	return u
}

// closeSuccessor closes this process's end of its successor's readiness
// channel, as exiting does: the child sees its parent gone.
func closeSuccessor(u *Upgrader) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.successor != nil && u.successor.ctl != nil {
		u.successor.ctl.Close()
		u.successor.ctl = nil
	}
}

// requireExit waits for Exit, which closes once the BeforeDrain hooks have
// run after a hand-over.
func requireExit(t *testing.T, u *Upgrader) {
	t.Helper()
	select {
	case <-u.Exit():
	case <-time.After(10 * time.Second):
		t.Fatal("Exit not closed after a successful upgrade")
	}
}

// gone reports whether pid has exited and been reaped or is a zombie.
func gone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && i+2 < len(b) && (b[i+2] == 'Z' || b[i+2] == 'X')
}

// nonblocking reads O_NONBLOCK of c's open file description from
// /proc/self/fdinfo, as the kernel sees it.
func nonblocking(t *testing.T, c syscall.Conn) bool {
	t.Helper()
	rc, err := c.SyscallConn()
	require.NoError(t, err)
	var info []byte
	require.NoError(t, rc.Control(func(fd uintptr) {
		info, err = os.ReadFile("/proc/self/fdinfo/" + strconv.Itoa(int(fd)))
	}))
	require.NoError(t, err)
	for _, line := range strings.Split(string(info), "\n") {
		if v, ok := strings.CutPrefix(line, "flags:"); ok {
			flags, err := strconv.ParseUint(strings.TrimSpace(v), 8, 64)
			require.NoError(t, err)
			return flags&syscall.O_NONBLOCK != 0
		}
	}
	t.Fatal("no flags in fdinfo")
	return false
}

func countFDs(t testing.TB) int {
	ents, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	return len(ents)
}

func TestUpgradeReady(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	dir := t.TempDir()
	pidPath := filepath.Join(dir, "app.pid")
	u := newTestUpgrader(t, "ready", Options{PIDFile: pidPath}, envPIDFile+"="+pidPath)
	ln, err := u.Listen(t.Context(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	require.ErrorIs(t, u.Upgrade(t.Context()), ErrNotReady)
	require.NoError(t, u.Ready())
	pid, err := pidfile.Read(pidPath)
	require.NoError(t, err)
	require.Equal(t, os.Getpid(), pid)
	require.True(t, nonblocking(t, ln.(syscall.Conn)))

	require.NoError(t, u.Upgrade(t.Context()))
	requireExit(t, u)
	assert.True(t, nonblocking(t, ln.(syscall.Conn)), "the parent's listener is still non-blocking after the hand-over")
	pid, err = pidfile.Read(pidPath)
	require.NoError(t, err)
	assert.NotEqual(t, os.Getpid(), pid, "the pidfile names the new generation")
	assert.ErrorIs(t, u.Upgrade(t.Context()), ErrHandedOver)
	u.Stop()
	_, err = os.Stat(pidPath)
	assert.NoError(t, err, "a stop after hand-over leaves the new generation's pidfile")
}

// TestWaitForParent: the new generation learns that its parent exited from
// the kernel closing the parent's end of the readiness channel.
func TestWaitForParent(t *testing.T) {
	mark := filepath.Join(t.TempDir(), "mark")
	u := newTestUpgrader(t, "waitparent", Options{}, envMark+"="+mark)
	assert.Equal(t, 1, u.Generation())
	require.NoError(t, u.WaitForParent(t.Context()), "a first generation has no parent to wait for")
	require.NoError(t, u.Ready())
	require.NoError(t, u.Upgrade(t.Context()))
	time.Sleep(100 * time.Millisecond)
	_, err := os.Stat(mark)
	require.ErrorIs(t, err, os.ErrNotExist, "the child must not see its parent gone while it lives")
	// Exiting closes the parent's end; closing it by hand is the same to the child.
	closeSuccessor(u)
	require.Eventually(t, func() bool {
		b, err := os.ReadFile(mark)
		return err == nil && string(b) == "2"
	}, 10*time.Second, 5*time.Millisecond, "the child saw its parent gone, and knows it is generation 2")
}

type failingWriter struct{}

func (failingWriter) Write(p []byte) (int, error) { return 0, errors.New("stderr is gone") }

// TestUpgradeStderrBroken: if this process cannot write the child's stderr
// anywhere, the child must still not die of SIGPIPE.
func TestUpgradeStderrBroken(t *testing.T) {
	u := newTestUpgrader(t, "chatty", Options{Stderr: failingWriter{}})
	require.NoError(t, u.Ready())
	require.NoError(t, u.Upgrade(t.Context()))
}

// TestHygiene: a program that a new generation starts sees none of
// handoff's variables and none of its sockets (listeners, readiness
// channels) or unclaimed files.
func TestHygiene(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	dir := t.TempDir()
	mark := filepath.Join(dir, "mark")
	extra := filepath.Join(dir, "unclaimed-extra-file")
	u := newTestUpgrader(t, "hygiene", Options{}, envMark+"="+mark)
	ln, err := u.Listen(t.Context(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	_, err = u.File("extra", func() (*os.File, error) { return os.Create(extra) })
	require.NoError(t, err)
	require.NoError(t, u.Ready())
	require.NoError(t, u.Upgrade(t.Context()))
	var out string
	require.Eventually(t, func() bool {
		b, err := os.ReadFile(mark)
		out = string(b)
		return err == nil && len(b) > 0
	}, 10*time.Second, 5*time.Millisecond)
	env, fds, ok := strings.Cut(out, "FDS\n")
	require.True(t, ok, out)
	for _, v := range []string{"LISTEN_FDS=", "LISTEN_FDNAMES=", "LISTEN_PID=", "HANDOFF="} {
		assert.NotContains(t, env, "\n"+v, "a grandchild inherited %s", v)
	}
	assert.NotContains(t, fds, "socket:", "a grandchild inherited a socket:\n%s", fds)
	assert.NotContains(t, fds, extra, "a grandchild inherited the unclaimed file")
	self, err := os.Executable()
	require.NoError(t, err)
	assert.NotContains(t, fds, self, "a grandchild inherited the program file its parent was started from")
}

// TestPIDFileWriteFails: a new generation that cannot write the pidfile
// (a full disk) fails the upgrade before this one stops; the pidfile
// still names this process.
func TestPIDFileWriteFails(t *testing.T) {
	pidPath := filepath.Join(t.TempDir(), "app.pid")
	u := newTestUpgrader(t, "nospace", Options{PIDFile: pidPath}, envPIDFile+"="+pidPath)
	require.NoError(t, u.Ready())
	err := u.Upgrade(t.Context())
	var ce *ChildError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, StageFailed, ce.Stage)
	assert.Contains(t, ce.Reason, "no space left on device")
	pid, err := pidfile.Read(pidPath)
	require.NoError(t, err)
	assert.Equal(t, os.Getpid(), pid)
}

// TestNewChecksPIDFile: a bad pidfile path fails at New, before anything
// is touched; a stale pidfile naming a dead process is replaced.
func TestNewChecksPIDFile(t *testing.T) {
	dir := t.TempDir()
	_, err := New(Options{PIDFile: filepath.Join(dir, "missing", "app.pid")})
	assert.ErrorContains(t, err, "does not exist")
	_, err = New(Options{PIDFile: dir})
	assert.Error(t, err, "a directory is not a pidfile")

	stale := filepath.Join(dir, "app.pid")
	require.NoError(t, os.WriteFile(stale, []byte("999999999\n"), 0o644))
	u, err := New(Options{PIDFile: stale})
	require.NoError(t, err)
	defer u.Stop()
	require.NoError(t, u.Ready())
	pid, err := pidfile.Read(stale)
	require.NoError(t, err)
	assert.Equal(t, os.Getpid(), pid)
}

// TestChildPIDFileFails: a new generation whose pidfile cannot be written
// (its build names another path) fails its take-over with the reason
// pidfile.Check gives, with and without probation; this process serves
// on, named by its own pidfile.
func TestChildPIDFileFails(t *testing.T) {
	for _, probation := range []time.Duration{0, 200 * time.Millisecond} {
		t.Run("probation="+probation.String(), func(t *testing.T) {
			dir := t.TempDir()
			pidPath := filepath.Join(dir, "app.pid")
			u := newTestUpgrader(t, "ready", Options{PIDFile: pidPath, Probation: probation},
				envPIDFile+"="+filepath.Join(dir, "missing", "app.pid"))
			ln, err := u.Listen(t.Context(), "tcp", "127.0.0.1:0")
			require.NoError(t, err)
			defer ln.Close()
			require.NoError(t, u.Ready())
			err = u.Upgrade(t.Context())
			var ce *ChildError
			require.ErrorAs(t, err, &ce)
			assert.Contains(t, ce.Reason, "does not exist: create it or choose another pidfile path")
			pid, err := pidfile.Read(pidPath)
			require.NoError(t, err)
			assert.Equal(t, os.Getpid(), pid, "the pidfile still names this process")
			select {
			case <-u.Exit():
				t.Fatal("this process hands over nothing after a failed upgrade")
			default:
			}
		})
	}
}

// TestBindConflict: when another process holds the address, the error
// names the address and that process; the process is left alone.
func TestBindConflict(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	ports := make([]string, 2)
	for i, network := range []string{"tcp", "udp"} {
		var c io.Closer
		var err error
		if network == "tcp" {
			c, err = net.Listen("tcp", "127.0.0.1:0")
			ports[i] = c.(net.Listener).Addr().String()
		} else {
			c, err = net.ListenPacket("udp", "127.0.0.1:0")
			ports[i] = c.(net.PacketConn).LocalAddr().String()
		}
		require.NoError(t, err)
		c.Close()
	}
	sock := filepath.Join(t.TempDir(), "held.sock")
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), envHelper+"=hold", envMark+"="+ports[0], envUDP+"="+ports[1], envUnix+"="+sock)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	line, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err, "the holder did not start")
	require.Equal(t, "holding\n", line)

	u, err := New(Options{})
	require.NoError(t, err)
	defer u.Stop()
	holder := fmt.Sprintf("held by PID %d (upgrade.test)", cmd.Process.Pid)
	_, err = u.Listen(t.Context(), "tcp", ports[0])
	assert.ErrorIs(t, err, syscall.EADDRINUSE)
	assert.ErrorContains(t, err, "listen on tcp "+ports[0])
	assert.ErrorContains(t, err, holder)
	_, err = u.ListenPacket(t.Context(), "udp", ports[1])
	assert.ErrorContains(t, err, holder)
	_, err = u.Listen(t.Context(), "unix", sock)
	assert.ErrorContains(t, err, holder)
	t.Log(err)
	assert.Nil(t, cmd.ProcessState, "the holder is left alone")
	assert.False(t, gone(cmd.Process.Pid))

	// A socket file whose listener died without unlinking it.
	stale := filepath.Join(t.TempDir(), "stale.sock")
	l, err := net.Listen("unix", stale)
	require.NoError(t, err)
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	_, err = u.Listen(t.Context(), "unix", stale)
	assert.ErrorContains(t, err, "a socket file nobody listens on, left by an earlier run; remove it")
}

// slowStart bounds the children that never become ready: long enough for a
// race-built child on a loaded machine to reach the point the test checks
// (its stderr line, its signal.Ignore) before it is stopped.
const slowStart = 2 * time.Second

// TestUpgradeFailures checks that each way a child can fail is reported
// with its reason, leaves the pidfile naming this process, leaves no
// process behind, and leaks neither fds nor goroutines.
func TestUpgradeFailures(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	cases := []struct {
		helper string
		opts   Options
		check  func(t *testing.T, e *ChildError)
	}{
		{"crash", Options{}, func(t *testing.T, e *ChildError) {
			assert.Equal(t, StageExited, e.Stage)
			require.NotNil(t, e.ProcessState)
			assert.Equal(t, 3, e.ProcessState.ExitCode())
			assert.Contains(t, e.Stderr, "boom: cannot parse config")
			assert.Contains(t, e.Error(), "exited with status 3 before it was ready (stderr tail: boom: cannot parse config)")
		}},
		{"fail", Options{}, func(t *testing.T, e *ChildError) {
			assert.Equal(t, StageFailed, e.Stage)
			assert.Equal(t, `bad config: key "port" missing`, e.Reason)
		}},
		{"hang", Options{UpgradeTimeout: slowStart}, func(t *testing.T, e *ChildError) {
			assert.Equal(t, StageTimeout, e.Stage)
			assert.Equal(t, "terminated", exitSignal(e.ProcessState))
			assert.Contains(t, e.Stderr, "warming caches")
		}},
		{"pidfail", Options{}, func(t *testing.T, e *ChildError) {
			assert.Equal(t, StageFailed, e.Stage)
			assert.Equal(t, "lost the race", e.Reason)
			// The pidfile check below proves it was pointed back at us.
		}},
		{"stubborn", Options{UpgradeTimeout: slowStart, StopGrace: 200 * time.Millisecond}, func(t *testing.T, e *ChildError) {
			assert.Equal(t, StageTimeout, e.Stage)
			assert.Equal(t, "killed", exitSignal(e.ProcessState))
		}},
	}
	dir := t.TempDir()
	pidPath := filepath.Join(dir, "app.pid")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	fds, goroutines := countFDs(t), runtime.NumGoroutine()
	for _, c := range cases {
		t.Run(c.helper, func(t *testing.T) {
			opts := c.opts
			opts.PIDFile = pidPath
			u := newTestUpgrader(t, c.helper, opts, envPIDFile+"="+pidPath)
			l, err := u.Listen(t.Context(), "tcp", "127.0.0.1:0")
			require.NoError(t, err)
			defer l.Close()
			require.NoError(t, u.Ready())
			err = u.Upgrade(t.Context())
			var ce *ChildError
			require.ErrorAs(t, err, &ce)
			t.Log(err)
			c.check(t, ce)
			_, err = os.Stat("/proc/" + strconv.Itoa(ce.PID))
			assert.ErrorIs(t, err, os.ErrNotExist, "child %d reaped: no zombie left", ce.PID)
			pid, err := pidfile.Read(pidPath)
			require.NoError(t, err)
			assert.Equal(t, os.Getpid(), pid, "pidfile still names this process")
			select {
			case <-u.Exit():
				t.Fatal("Exit closed after a failed upgrade")
			default:
			}
			// A failed upgrade can be retried (and fails the same way).
			require.ErrorAs(t, u.Upgrade(t.Context()), &ce)
			c.check(t, ce)
		})
	}
	// Nothing of the failed upgrades may remain.
	requireNoLeak(t, fds, goroutines)
}

// requireNoLeak waits for the fd and goroutine counts to fall back to
// what they were, and dumps what is left if they do not.
func requireNoLeak(t *testing.T, fds, goroutines int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if runtime.NumGoroutine() <= goroutines && countFDs(t) <= fds {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	buf := make([]byte, 1<<16)
	buf = buf[:runtime.Stack(buf, true)]
	links := ""
	ents, _ := os.ReadDir("/proc/self/fd")
	for _, e := range ents {
		l, _ := os.Readlink("/proc/self/fd/" + e.Name())
		links += e.Name() + "->" + l + " "
	}
	t.Fatalf("leak: goroutines %d (were %d), fds %d (were %d): %s\n%s",
		runtime.NumGoroutine(), goroutines, countFDs(t), fds, links, buf)
}

// TestProbation: a child that dies after saying ready, within the
// probation, fails the upgrade; the pidfile is pointed back at this
// process, which never stopped serving. One that outlives it takes over.
func TestProbation(t *testing.T) {
	dir := t.TempDir()
	pidPath := filepath.Join(dir, "app.pid")
	t.Run("dies", func(t *testing.T) {
		u := newTestUpgrader(t, "dies", Options{PIDFile: pidPath, Probation: 2 * time.Second}, envPIDFile+"="+pidPath)
		ln, err := u.Listen(t.Context(), "tcp", "127.0.0.1:0")
		require.NoError(t, err)
		require.NoError(t, u.Ready())
		go u.Serve(&http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "parent")
		})}, ln)
		// During the probation only this process serves: the child would
		// answer "child" had its Ready returned.
		probed := make(chan []string, 1)
		go func() {
			var bodies []string
			client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
			for range 50 {
				resp, err := client.Get("http://" + ln.Addr().String())
				if err != nil {
					bodies = append(bodies, err.Error())
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				bodies = append(bodies, string(b))
				time.Sleep(5 * time.Millisecond)
			}
			probed <- bodies
		}()
		err = u.Upgrade(t.Context())
		for _, b := range <-probed {
			require.Equal(t, "parent", b)
		}
		var ce *ChildError
		require.ErrorAs(t, err, &ce)
		t.Log(err)
		assert.Equal(t, StageProbation, ce.Stage)
		assert.Equal(t, 4, ce.ProcessState.ExitCode())
		assert.Contains(t, ce.Stderr, "background worker failed")
		pid, err := pidfile.Read(pidPath)
		require.NoError(t, err)
		assert.Equal(t, os.Getpid(), pid, "the pidfile names this process again")
		select {
		case <-u.Exit():
			t.Fatal("Exit closed after a failed probation")
		default:
		}
	})
	t.Run("survives", func(t *testing.T) {
		u := newTestUpgrader(t, "ready", Options{PIDFile: pidPath, Probation: 200 * time.Millisecond}, envPIDFile+"="+pidPath)
		require.NoError(t, u.Ready())
		start := time.Now()
		require.NoError(t, u.Upgrade(t.Context()))
		assert.GreaterOrEqual(t, time.Since(start), 200*time.Millisecond, "the upgrade waited out the probation")
		requireExit(t, u)
	})
}

// TestUpgradeInProgressAndStop: a second upgrade is refused at once while
// one runs, and Stop interrupts the running one and returns only once its
// child (here one that ignores SIGTERM) is gone.
func TestUpgradeInProgressAndStop(t *testing.T) {
	logs := &syncBuffer{}
	u := newTestUpgrader(t, "stubborn", Options{
		UpgradeTimeout: time.Minute,
		StopGrace:      200 * time.Millisecond,
		Logger:         slog.New(slog.NewTextHandler(logs, nil)),
	})
	require.NoError(t, u.Ready())
	res := make(chan error, 1)
	go func() { res <- u.Upgrade(context.Background()) }()
	var childPID int
	require.Eventually(t, func() bool {
		_, after, ok := strings.Cut(logs.String(), "child_pid=")
		if ok {
			childPID, _ = strconv.Atoi(strings.Fields(after)[0])
		}
		return childPID != 0
	}, 5*time.Second, time.Millisecond)
	assert.ErrorIs(t, u.Upgrade(t.Context()), ErrInProgress)
	u.Stop()
	assert.True(t, gone(childPID), "Stop returned while child %d lives", childPID)
	var ce *ChildError
	require.ErrorAs(t, <-res, &ce)
	assert.Equal(t, childPID, ce.PID)
	assert.Equal(t, StageCanceled, ce.Stage)
	assert.ErrorIs(t, ce, ErrStopped)
	assert.NotContains(t, ce.Error(), "keeps serving", "a stopping generation does not claim it keeps serving: %v", ce)
	assert.Equal(t, 1, strings.Count(ce.Error(), "upgrade:"), "one prefix: %v", ce)
	assert.ErrorIs(t, u.Upgrade(t.Context()), ErrStopped)
}

// TestUpgradeContextCanceled: the caller's context bounds the upgrade.
func TestUpgradeContextCanceled(t *testing.T) {
	u := newTestUpgrader(t, "hang", Options{StopGrace: time.Second})
	require.NoError(t, u.Ready())
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	err := u.Upgrade(ctx)
	var ce *ChildError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, StageCanceled, ce.Stage)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
}

// TestUnixAndUDPSurviveUpgrades hands a unix listener and a UDP socket
// through several generations while a client dials the unix path and
// sends datagrams non-stop: the path never disappears, no dial fails, and
// each new generation receives datagrams on the same socket. This process
// is the first generation; the later ones are helpers.
func TestUnixAndUDPSurviveUpgrades(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "app.sock")
	pidPath := filepath.Join(dir, "app.pid")
	u := newTestUpgrader(t, "serve", Options{PIDFile: pidPath},
		envUnix+"="+sock, envPIDFile+"="+pidPath, envUDP+"=127.0.0.1:0")
	ln, err := u.Listen(t.Context(), "unix", sock)
	require.NoError(t, err)
	pc, err := u.ListenPacket(t.Context(), "udp", "127.0.0.1:0")
	require.NoError(t, err)
	udpAddr := pc.LocalAddr().String()
	require.NoError(t, u.Ready())

	// Dial the unix path non-stop; every dial must connect and be answered.
	var dials, failures atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := readLine(sock); err != nil {
				failures.Add(1)
				t.Logf("unix dial: %v", err)
			}
			dials.Add(1)
		}
	}()
	// Serve the first generation's share of dials until it hands over.
	go u.ServeConns(ln, func(ctx context.Context, c net.Conn) { c.Write([]byte("gen=1\n")) })

	require.NoError(t, u.Upgrade(t.Context()))
	require.NoError(t, pc.Close())
	pid, err := pidfile.Read(pidPath)
	require.NoError(t, err)
	requireUDPFrom(t, udpAddr, pid)

	gen := 3
	for range 3 {
		require.NoError(t, syscall.Kill(pid, syscall.SIGHUP))
		next := waitPIDFile(t, pidPath, pid)
		require.Eventually(t, func() bool { return gone(pid) }, 10*time.Second, 5*time.Millisecond)
		_, err := os.Stat(sock)
		require.NoError(t, err, "the socket path exists after the hand-over")
		requireUDPFrom(t, udpAddr, next)
		line, err := readLine(sock)
		require.NoError(t, err)
		assert.True(t, strings.HasPrefix(line, "pid="+strconv.Itoa(next)+" gen="+strconv.Itoa(gen)+" "), line)
		gen++
		pid = next
	}
	close(stop)
	<-done
	t.Logf("%d unix dials across 4 upgrades, %d failed", dials.Load(), failures.Load())
	assert.Zero(t, failures.Load())
	assert.Greater(t, dials.Load(), int64(4))

	// A final stop removes the socket path and the pidfile.
	require.NoError(t, syscall.Kill(pid, syscall.SIGTERM))
	require.Eventually(t, func() bool { return gone(pid) }, 10*time.Second, 5*time.Millisecond)
	_, err = os.Stat(sock)
	assert.ErrorIs(t, err, os.ErrNotExist, "socket path unlinked by the last generation's stop")
	_, err = os.Stat(pidPath)
	assert.ErrorIs(t, err, os.ErrNotExist, "pidfile removed by the last generation's stop")
}

func waitPIDFile(t *testing.T, path string, old int) int {
	t.Helper()
	var pid int
	require.Eventually(t, func() bool {
		p, err := pidfile.Read(path)
		pid = p
		return err == nil && p != old
	}, 10*time.Second, 2*time.Millisecond, "pidfile still names %d", old)
	return pid
}

// requireUDPFrom sends datagrams to addr until one is echoed by pid.
func requireUDPFrom(t *testing.T, addr string, pid int) {
	t.Helper()
	c, err := net.Dial("udp", addr)
	require.NoError(t, err)
	defer c.Close()
	want := strconv.Itoa(pid) + " ping"
	buf := make([]byte, 128)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c.Write([]byte("ping"))
		c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		n, err := c.Read(buf)
		if err == nil && string(buf[:n]) == want {
			return
		}
	}
	t.Fatalf("no UDP echo from pid %d", pid)
}

// TestNoLeaksAcrossUpgrades upgrades a chain of generations (100, or
// UPGRADE_TEST_CHAIN) and checks that each live generation holds no more
// descriptors and goroutines than the first of the chain did.
func TestNoLeaksAcrossUpgrades(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	n := 100
	if testing.Short() {
		n = 20
	}
	if v, err := strconv.Atoi(os.Getenv("UPGRADE_TEST_CHAIN")); err == nil {
		n = v
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "app.sock")
	pidPath := filepath.Join(dir, "app.pid")
	u := newTestUpgrader(t, "serve", Options{PIDFile: pidPath},
		envUnix+"="+sock, envPIDFile+"="+pidPath, envUDP+"=127.0.0.1:0")
	ln, err := u.Listen(t.Context(), "unix", sock)
	require.NoError(t, err)
	defer ln.Close()
	pc, err := u.ListenPacket(t.Context(), "udp", "127.0.0.1:0")
	require.NoError(t, err)
	require.NoError(t, u.Ready())
	require.NoError(t, u.Upgrade(t.Context()))
	pc.Close()
	pid, err := pidfile.Read(pidPath)
	require.NoError(t, err)

	// counts reads a quiet generation's counts once its parent is gone.
	counts := func(pid int) (fds, goroutines int) {
		require.Eventually(t, func() bool {
			line, err := readLine(sock)
			if err != nil || !strings.HasPrefix(line, fmt.Sprintf("pid=%d ", pid)) {
				return false
			}
			var gen int
			_, err = fmt.Sscanf(line, "pid=%d gen=%d fds=%d goroutines=%d", &pid, &gen, &fds, &goroutines)
			return err == nil
		}, 10*time.Second, 5*time.Millisecond)
		return fds, goroutines
	}
	closeSuccessor(u) // this process plays a parent that has exited
	time.Sleep(100 * time.Millisecond)
	baseFDs, baseG := counts(pid)
	maxFDs, maxG := baseFDs, baseG
	for i := range n {
		require.NoError(t, syscall.Kill(pid, syscall.SIGHUP))
		next := waitPIDFile(t, pidPath, pid)
		require.Eventually(t, func() bool { return gone(pid) }, 10*time.Second, time.Millisecond, "upgrade %d", i)
		pid = next
		var fds, g int
		require.Eventually(t, func() bool {
			fds, g = counts(pid)
			return fds <= baseFDs && g <= baseG
		}, 5*time.Second, 10*time.Millisecond, "generation %d holds %d fds and %d goroutines; the first held %d and %d", i+3, fds, g, baseFDs, baseG)
		maxFDs, maxG = max(maxFDs, fds), max(maxG, g)
	}
	t.Logf("%d upgrades: fds %d at the start, at most %d after; goroutines %d, at most %d", n, baseFDs, maxFDs, baseG, maxG)
	require.NoError(t, syscall.Kill(pid, syscall.SIGTERM))
	require.Eventually(t, func() bool { return gone(pid) }, 10*time.Second, 5*time.Millisecond)
}

// TestStageVocabulary: the stages are the words the control socket, and
// so `handoff upgrade` and `handoff run`, report.
func TestStageVocabulary(t *testing.T) {
	for s, c := range map[Stage]string{
		StageStart: control.StageStart, StageFailed: control.StageFailed, StageExited: control.StageExited,
		StageTimeout: control.StageTimeout, StageCanceled: control.StageCanceled, StageProbation: control.StageProbation,
		StageCheck: control.StageCheck,
	} {
		assert.Equal(t, c, string(s))
	}
}

// TestClosedBeforeStart: a listener the program closed before Upgrade fails
// the upgrade before anything is started, naming it; the others serve on,
// and nothing of the attempt is left.
func TestClosedBeforeStart(t *testing.T) {
	u, a, b := readyWithTwo(t, Options{})
	b.Close()
	fds, goroutines := countFDs(t), runtime.NumGoroutine()

	started := false
	startProcess = func(path string, args []string, attr *syscall.ProcAttr, first int, conns []syscall.Conn) (int, error) {
		started = true
		return start(path, args, attr, first, conns)
	}
	defer func() { startProcess = start }()
	err := u.Upgrade(t.Context())
	var ce *ChildError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, StageStart, ce.Stage)
	assert.Zero(t, ce.PID, "nothing was started")
	assert.Contains(t, err.Error(), "closed before Exit")
	assert.Contains(t, err.Error(), b.Addr().String())
	assert.True(t, started, "start found it closed before it started anything")
	requireAccepts(t, a)
	requireNoLeak(t, fds, goroutines)
}

// TestClosedWhileStarting: a listener closed while the next generation
// starts (its number may name another file by then) gets that process
// killed and reaped before it is told to go; the pidfile still names this
// one, the others serve on, and nothing of the attempt is left.
func TestClosedWhileStarting(t *testing.T) {
	pidPath := filepath.Join(t.TempDir(), "app.pid")
	u, a, b := readyWithTwo(t, Options{PIDFile: pidPath}, envPIDFile+"="+pidPath)
	fds, goroutines := countFDs(t), runtime.NumGoroutine()

	started := 0
	startProcess = func(path string, args []string, attr *syscall.ProcAttr, first int, conns []syscall.Conn) (int, error) {
		pid, err := start(path, args, attr, first, conns)
		started = pid
		b.Close()
		return pid, err
	}
	defer func() { startProcess = start }()

	err := u.Upgrade(t.Context())
	var ce *ChildError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, StageStart, ce.Stage)
	assert.Contains(t, err.Error(), "closed before Exit")
	require.Positive(t, started)
	assert.Equal(t, started, ce.PID, "the process started and killed")
	assert.ErrorIs(t, syscall.Kill(started, 0), syscall.ESRCH, "it was killed and reaped")
	pid, err := pidfile.Read(pidPath)
	require.NoError(t, err)
	assert.Equal(t, os.Getpid(), pid)
	requireAccepts(t, a)
	requireNoLeak(t, fds-1, goroutines) // b is closed
}

// readyWithTwo returns a ready Upgrader (of the "ready" helper) with two
// listeners, closed at the end of the test.
func readyWithTwo(t *testing.T, opts Options, env ...string) (*Upgrader, net.Listener, net.Listener) {
	t.Helper()
	u := newTestUpgrader(t, "ready", opts, env...)
	a, err := u.Listen(t.Context(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { a.Close() })
	b, err := u.Listen(t.Context(), "tcp", "127.0.0.2:0")
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	require.NoError(t, u.Ready())
	return u, a, b
}

// requireAccepts checks that ln still takes connections.
func requireAccepts(t *testing.T, ln net.Listener) {
	t.Helper()
	c, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	s, err := ln.Accept()
	require.NoError(t, err)
	s.Close()
}
