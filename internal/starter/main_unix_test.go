//go:build unix

package starter

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/handoff-go/handoff/fdpass"
	"github.com/handoff-go/handoff/readiness"
)

// helperEnv names the helper a re-executed test binary runs instead of the
// tests (see TestMain).
const helperEnv = "STARTER_TEST_HELPER"

// helpers are the programs the tests start: the test binary itself, run
// with helperEnv set. Each returns its exit status.
var helpers = map[string]func() int{
	"serve":        helperServe,
	"fail":         helperFail,
	"fork":         helperFork,
	"notify-ready": helperNotifyReady,
	"stubborn":     helperStubborn,
	"idle":         helperIdle,
	"quiet":        helperQuiet,
	"exit0":        func() int { return 0 },
	"cat":          helperCat,
}

// shimArg makes the test binary a LISTEN_PID shim (Config.Shim).
const shimArg = "__starter-shim"

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == shimArg {
		fmt.Fprintln(os.Stderr, ExecShim(os.Args[2:]))
		os.Exit(127)
	}
	if name := os.Getenv(helperEnv); name != "" {
		os.Unsetenv(helperEnv)
		h, ok := helpers[name]
		if !ok {
			fmt.Fprintf(os.Stderr, "starter test helper: unknown helper %q\n", name)
			os.Exit(2)
		}
		time.AfterFunc(30*time.Second, func() {
			fmt.Fprintf(os.Stderr, "starter test helper %q: watchdog fired after 30s\n", name)
			os.Exit(124)
		})
		os.Exit(h())
	}
	os.Exit(m.Run())
}

// helperConfig returns a Config that starts the test binary as the named
// helper, with env added to this process's environment.
func helperConfig(t *testing.T, name string, env ...string) Config {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	e := append(os.Environ(), helperEnv+"="+name,
		// A race-enabled helper would sleep a second at exit.
		"GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	return Config{Path: exe, Env: append(e, env...)}
}

// notifier is the helper's client of the starter's notify socket.
func notifier() *readiness.Notifier {
	n, err := readiness.NewNotifier(os.Getenv("NOTIFY_SOCKET"))
	if err != nil || n == nil {
		fmt.Fprintf(os.Stderr, "no notifier for NOTIFY_SOCKET=%q: %v\n", os.Getenv("NOTIFY_SOCKET"), err)
		os.Exit(1)
	}
	return n
}

func fail(err error) int {
	fmt.Fprintln(os.Stderr, err)
	return 1
}

// put prints one report line, key=value, on stdout.
func put(key, value string) { fmt.Printf("%s=%s\n", key, value) }

// env reports a variable, or "<unset>".
func env(key string) string {
	if v, ok := os.LookupEnv(key); ok {
		return v
	}
	return "<unset>"
}

// helperServe reports the variables it was started with, adopts its one
// socket with fdpass.Inherit, answers each connection with its PID, says it
// is ready, and exits 0 on SIGTERM.
func helperServe() int {
	put("pid", strconv.Itoa(os.Getpid()))
	for _, k := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "HANDOFF", "A.B"} {
		put(k, env(k))
	}
	put("args", fmt.Sprintf("%q", os.Args[1:]))
	wd, _ := os.Getwd()
	put("cwd", wd)
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	in, err := fdpass.Inherit()
	if err != nil {
		return fail(err)
	}
	names := in.Names()
	if len(names) != 1 {
		return fail(fmt.Errorf("inherited %q, want one socket", names))
	}
	ln, err := in.Listener(names[0], "tcp")
	if err != nil {
		return fail(err)
	}
	put("after_inherit_LISTEN_PID", env("LISTEN_PID"))
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "%d\n", os.Getpid())
			c.Close()
		}
	}()
	if err := notifier().Ready("serving " + names[0]); err != nil {
		return fail(err)
	}
	<-term
	ln.Close()
	return 0
}

// helperFail fails at start, as a broken build does: a line on stderr, a
// last STATUS=, and status 3.
func helperFail() int {
	fmt.Fprintln(os.Stderr, "boom: cannot parse config")
	if err := notifier().Status("failing: bad config"); err != nil {
		return fail(err)
	}
	return 3
}

// helperFork has another process send READY=1, waits until it has, then
// says so itself with a STATUS=, and waits for SIGTERM's default action.
func helperFork() int {
	exe, err := os.Executable()
	if err != nil {
		return fail(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), helperEnv+"=notify-ready")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return fail(fmt.Errorf("the sub-process: %w", err))
	}
	if err := notifier().Status("sub-process sent READY=1"); err != nil {
		return fail(err)
	}
	select {}
}

func helperNotifyReady() int {
	if err := notifier().Ready("from a sub-process"); err != nil {
		return fail(err)
	}
	return 0
}

// helperStubborn ignores SIGTERM, and then says it is ready.
func helperStubborn() int {
	signal.Ignore(syscall.SIGTERM)
	if err := notifier().Ready("ignoring SIGTERM"); err != nil {
		return fail(err)
	}
	select {}
}

// helperIdle says it is ready with its NOTIFY_SOCKET as its status, and
// waits for SIGTERM's default action.
func helperIdle() int {
	if err := notifier().Ready("notify=" + os.Getenv("NOTIFY_SOCKET")); err != nil {
		return fail(err)
	}
	select {}
}

// helperQuiet never notifies.
func helperQuiet() int { select {} }

// helperCat copies stdin to stdout, then writes a line to stderr.
func helperCat() int {
	if _, err := io.Copy(os.Stdout, os.Stdin); err != nil {
		return fail(err)
	}
	fmt.Fprintln(os.Stderr, "and a line on stderr")
	return 0
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// report parses key=value lines.
func report(out string) map[string]string {
	r := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			r[k] = v
		}
	}
	return r
}

// answer dials addr and returns the PID the helper answers with.
func answer(t *testing.T, addr net.Addr) int {
	t.Helper()
	c, err := net.Dial(addr.Network(), addr.String())
	require.NoError(t, err)
	defer c.Close()
	b, err := io.ReadAll(c)
	require.NoError(t, err)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	require.NoError(t, err, "answer %q", b)
	return pid
}
