package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"

	"github.com/handoff-go/handoff/internal/starter"
	"github.com/handoff-go/handoff/internal/supervisor"
)

const runUsage = `usage: handoff run -listen NETWORK:ADDR [-listen ...] [options] -- PROGRAM [ARGS...]

Supervise PROGRAM with a stable PID: bind the sockets once, start PROGRAM
with them, and on SIGHUP, SIGUSR2 or a control-socket "upgrade" start a new
PROGRAM on the same sockets, wait until it is ready, then stop the old one.
Nothing is dropped: both share one accept queue.

PROGRAM finds its sockets as under systemd socket activation: fds 3.. in
the order of -listen, LISTEN_FDS, LISTEN_FDNAMES (e.g. "tcp/127.0.0.1%3A8080")
and LISTEN_PID (its own PID). It says it is ready by sending "READY=1" to
the unix datagram socket NOTIFY_SOCKET (sd_notify); only the worker's own
PID counts, so exec the server rather than fork it from a wrapper script.
A program that cannot notify: use -ready delay=2s, which counts it ready
when it is still running after 2s. On SIGTERM it should stop accepting,
finish what it accepted, and exit 0.

SIGTERM or SIGINT stops the worker (SIGKILL after -drain-timeout) and
exits with its status (0 if it exited 0 or by that SIGTERM). SIGUSR1,
SIGQUIT and SIGWINCH are passed on to the worker. As a container's
entrypoint it is the init its workers need: on Linux it is a child
subreaper and reaps every process a worker leaves behind.

options:
`

// listenFlags collects repeated -listen flags.
type listenFlags []supervisor.Listen

func (l *listenFlags) String() string {
	s := make([]string, len(*l))
	for i, v := range *l {
		s[i] = v.String()
	}
	return strings.Join(s, ",")
}

func (l *listenFlags) Set(v string) error {
	ln, err := supervisor.ParseListen(v)
	if err != nil {
		return err
	}
	*l = append(*l, ln)
	return nil
}

// runCmd supervises a program with a stable PID.
func runCmd(args []string) int {
	fs := flag.NewFlagSet("handoff run", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), runUsage)
		fs.PrintDefaults()
	}
	var listens listenFlags
	fs.Var(&listens, "listen", "socket to bind and hand to the worker: tcp:ADDR, unix:PATH, udp:ADDR (also tcp4, tcp6, udp4, udp6, unixgram); repeat for more")
	pidPath := fs.String("pidfile", "", "write the supervisor's PID here once the first worker is ready; removed on exit")
	ctl := fs.String("control", "", "serve the control socket (handoff upgrade/status -control) at this path, mode 0600")
	ready := fs.String("ready", "notify", `when a worker is ready: "notify" (it sends READY=1 to NOTIFY_SOCKET) or "delay=DURATION" (it is still running after DURATION, e.g. delay=2s)`)
	upTimeout := fs.Duration("upgrade-timeout", supervisor.DefaultUpgradeTimeout, "how long a new worker may take to become ready")
	drain := fs.Duration("drain-timeout", supervisor.DefaultDrainTimeout, "how long an old worker has after SIGTERM before SIGKILL")
	onCrash := fs.String("on-crash", "restart", `when the worker dies on its own: "restart" (with backoff, 100ms doubling to 10s) or "exit" (with its status)`)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	usageErr := func(err error) int {
		fmt.Fprintf(os.Stderr, "handoff run: %v\n(run \"handoff run -h\" for help)\n", err)
		return exitUsage
	}
	delay, err := supervisor.ParseReady(*ready)
	if err != nil {
		return usageErr(err)
	}
	policy, err := supervisor.ParseCrashPolicy(*onCrash)
	if err != nil {
		return usageErr(err)
	}
	if *upTimeout <= 0 || *drain <= 0 {
		return usageErr(errors.New("-upgrade-timeout and -drain-timeout must be positive durations"))
	}
	shim, err := shimPath()
	if err != nil {
		fmt.Fprintln(os.Stderr, "handoff run:", err)
		return exitFailed
	}
	sup, err := supervisor.New(supervisor.Config{
		Listen:         listens,
		Shim:           []string{shim, shimArg},
		Reaper:         true,
		Program:        fs.Args(),
		PIDFile:        *pidPath,
		Control:        *ctl,
		ReadyDelay:     delay,
		UpgradeTimeout: *upTimeout,
		DrainTimeout:   *drain,
		OnCrash:        policy,
		Stderr:         os.Stderr,
		Logger:         slog.New(slog.NewTextHandler(os.Stderr, nil)),
	})
	if errors.Is(err, supervisor.ErrConfig) {
		return usageErr(err)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "handoff run:", err)
		return exitFailed
	}
	err = sup.Run(context.Background())
	var ee *supervisor.ExitError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ee):
		fmt.Fprintln(os.Stderr, "handoff run:", err)
		return ee.Code
	}
	fmt.Fprintln(os.Stderr, "handoff run:", err)
	return exitFailed
}

// shimArg is the hidden first argument with which this binary is its own
// LISTEN_PID shim: no shell is needed (distroless images have none), and
// every variable reaches the worker, whatever its name.
const shimArg = "__handoff-exec"

// execShim runs as the supervisor's child: it sets LISTEN_PID to its own
// PID and execs the worker program in its place. It returns only on
// failure, with the status a shell gives a command it cannot run.
func execShim(args []string) int {
	err := starter.ExecShim(args)
	fmt.Fprintln(os.Stderr, "handoff:", err)
	return 127
}

// shimPath returns the path of this binary, to start as the exec shim. On
// Linux /proc/self/exe still works after a deploy replaced or removed the
// file this process was started from.
func shimPath() (string, error) {
	if runtime.GOOS == "linux" {
		if _, err := os.Stat("/proc/self/exe"); err == nil {
			return "/proc/self/exe", nil
		}
	}
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("cannot find this binary to start workers through: %w", err)
	}
	return exe, nil
}
