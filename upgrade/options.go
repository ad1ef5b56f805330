package upgrade

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"time"
)

// Defaults for the zero values of Options.
const (
	defaultUpgradeTimeout = time.Minute
	defaultDrainTimeout   = 30 * time.Second
	defaultIdleGrace      = time.Second
	defaultStopGrace      = 5 * time.Second
	defaultMaxGenerations = 4
)

// Options configures an [Upgrader]. The zero value works: no pidfile, the
// default timeouts, the next generation started the way this process was.
// New copies it; changing it afterwards changes nothing.
type Options struct {
	// PIDFile, if set, is rewritten atomically with the PID of each
	// generation once it is live, and removed on a final stop. New checks
	// that it can be written in a first generation; a later one that
	// cannot write it fails its take-over with the same reason, and the
	// previous generation serves on. Empty: no pidfile.
	PIDFile string

	// UpgradeTimeout bounds how long a new generation may take to become
	// ready; past it the child is stopped and the upgrade fails.
	// Zero: one minute.
	UpgradeTimeout time.Duration

	// Probation is how long a new generation that said ready must stay
	// alive before this one hands over. Meanwhile this process alone keeps
	// serving (the child's Ready waits), so a child that dies in probation
	// costs no request: Upgrade returns a *ChildError at StageProbation.
	// The price: every upgrade takes that much longer, and the new build
	// is proven only by staying alive, not by serving. Zero: none.
	Probation time.Duration

	// RollbackWindow, if set, keeps this generation parked for that long
	// after it handed over and drained: not accepting, holding copies of
	// the sockets. If the new generation exits, fails HealthCheck, or
	// asks ([Upgrader.Rollback], `handoff rollback`) within the window,
	// this generation starts its own build again — the very binary it
	// runs — with the sockets, hands over to it as in an upgrade (the
	// pidfile names it; MAINPID too, which under systemd needs
	// NotifyAccess=all), and tells a new generation still alive to drain.
	// After a window without fault it exits. A parked generation counts
	// against MaxGenerations, and Serve in main returns only after the
	// window (the AfterDrain hooks run then). Zero: none; the generation
	// exits once drained.
	RollbackWindow time.Duration
	// HealthCheck, if set, is called every second during a rollback
	// window, given two seconds; an error rolls back. It runs in the
	// parked generation and should reach the new one: [HTTPCheck] asks
	// a URL on a fresh connection, which only the new generation accepts.
	// An error is a verdict: retry within the function if one miss should
	// not count. Nil: only the new generation's exit, or its asking,
	// rolls back.
	HealthCheck func(ctx context.Context) error

	// MaxGenerations caps the generations alive at once: the live one and
	// older ones still draining long-lived connections (a tableflip
	// process that handed over to a handoff build counts too). An upgrade
	// that would exceed it is refused with ErrTooManyGenerations.
	// Zero: 4. Values below 2 are an error.
	MaxGenerations int

	// DrainTimeout bounds the drain of an old generation in Serve and
	// ServeConns, counted from when the drain begins; what is still open
	// then is closed. It also bounds each shutdown hook that sets no
	// timeout of its own. Zero: 30 seconds.
	DrainTimeout time.Duration

	// IdleGrace is how long, from the start of a drain, Serve lets an HTTP
	// keep-alive connection that does not move to the new generation (TLS,
	// HTTP/2, a new generation that does not take them) bring its next
	// request, answered with "Connection: close", before an idle one is
	// closed; and how long one that moves may keep bringing new requests
	// to this generation before it is answered so too. It never extends
	// past DrainTimeout. Zero: 1 second.
	IdleGrace time.Duration

	// StopGrace is how long a failed child gets between SIGTERM and
	// SIGKILL, and how long handlers get to return once the drain deadline
	// has cut their connections. Zero: 5 seconds.
	StopGrace time.Duration

	// Logger receives what cannot be returned as an error: signals and
	// their outcomes, hand-overs, drains cut short. Nil: discard.
	Logger *slog.Logger

	// Path is the program started as the next generation, opened anew at
	// each upgrade, so that replacing the file or flipping a symlink such
	// as current -> releases/N starts the new build. It may be a start
	// script that execs the program (run.sh ending in
	// `exec releases/$(cat CURRENT)/app "$@"`): each upgrade then runs
	// what the script names at that moment. The script must exec, not fork:
	// a failed child is stopped by signalling its PID.
	// Empty: in a first generation, the path this program was started
	// with (os.Args[0] made absolute at New); in a later one, what its
	// parent starts — so a generation that a start script exec'd starts
	// the script again, not the binary the script chose.
	Path string
	// Check, if set, is given the program at Path, opened, before each
	// upgrade starts it; an error refuses the upgrade (a *ChildError at
	// StageCheck) and nothing is started. On Linux the process started is
	// the very file checked, executed from the open descriptor, so a file
	// replaced at Path after the check never runs; elsewhere, and for a
	// script (its interpreter opens it again by path), the path is started
	// as it is then. [SHA256File] is a ready-made check. Nil: none, and on
	// Linux the file opened is still the one started.
	Check func(program *os.File) error
	// Args are the next generation's arguments, including argv[0].
	// Nil: os.Args as at New.
	Args []string
	// Env is the next generation's environment. Nil: os.Environ() as at
	// New, less the variables handoff sets itself.
	Env []string
	// EnvFile, if set, is a file of KEY=VALUE lines read at each upgrade
	// and added to the next generation's environment, replacing what it
	// sets: a deploy changes settings by changing the file. Blank lines
	// and lines starting with '#' are skipped; "export " before a line and
	// quotes around a value are dropped. A variable removed from the file
	// keeps the value the running generation has: set it empty instead. A
	// file that cannot be read fails the upgrade before anything starts.
	// Empty: none.
	EnvFile string
	// State, if set, is called when an upgrade starts, before the new
	// generation is; what it returns (at most 64 MiB) is handed to that
	// generation, which reads it with [Upgrader.InheritedState] — a
	// cache, counters, a session table: whatever the process knows that
	// the next one should too. It runs while this generation still
	// serves, so what changes later is not in it; connections move with
	// their own state at the hand-over ([Upgrader.PassConn]). An error
	// fails the upgrade before anything starts. Nil: no state.
	State func() ([]byte, error)
	// Dir is the next generation's working directory. Empty: the working
	// directory at New.
	Dir string
	// Stderr receives the next generation's standard error until it is
	// live (afterwards the child writes to this process's own stderr
	// directly). The last 4 KiB are also kept for the error of a failed
	// upgrade. Nil: os.Stderr.
	Stderr io.Writer

	// ForeignChild says the next generation is not a handoff program but
	// a systemd-style one (go-systemd's activation package, C's
	// sd_listen_fds): it gets its sockets as socket activation hands them,
	// LISTEN_PID included (see package fdpass), and no handoff control
	// files, and it says ready by sending READY=1 with sd_notify to a
	// private NOTIFY_SOCKET. This process then writes the pidfile with the
	// child's PID and hands over as usual. The child's stderr goes
	// straight to this process's stderr, as it outlives this process, so
	// a failure cannot quote it; ChildError.Status carries the last
	// STATUS= it sent instead. Its later notifications find no socket:
	// under systemd this process sends MAINPID for it, but nobody pings a
	// systemd watchdog after the hand-over, so it is not given
	// WATCHDOG_USEC. False: the next generation is a handoff program.
	ForeignChild bool

	// ControlSocket, if set, is the path of a unix socket on which
	// `handoff upgrade` asks for an upgrade and gets its verdict, and
	// `handoff status` asks what this process is. It is created with mode
	// 0600 and serves only clients of this UID or root; it is handed to
	// each new generation like a listener, so its path never disappears.
	// Empty: none.
	ControlSocket string
	// Version is reported by the control socket's status. Empty: none.
	Version string

	// UpgradeSignals are the signals HandleSignals upgrades on.
	// Nil: SIGHUP and SIGUSR2, and SIGUSR1 with UpgradeOnSIGUSR1.
	UpgradeSignals []os.Signal
	// UpgradeOnSIGUSR1 adds SIGUSR1 to the default UpgradeSignals, for
	// deploy tools that send it. It does nothing where there is no SIGUSR1
	// or when UpgradeSignals is set.
	UpgradeOnSIGUSR1 bool
	// StopSignals are the signals HandleSignals stops gracefully on.
	// Nil: SIGTERM and SIGINT.
	StopSignals []os.Signal
}

// withDefaults returns a copy of o with zero values replaced, or an error
// that names the field to fix.
func (o Options) withDefaults() (Options, error) {
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"UpgradeTimeout", &o.UpgradeTimeout, defaultUpgradeTimeout},
		{"DrainTimeout", &o.DrainTimeout, defaultDrainTimeout},
		{"IdleGrace", &o.IdleGrace, defaultIdleGrace},
		{"StopGrace", &o.StopGrace, defaultStopGrace},
		{"Probation", &o.Probation, 0},
		{"RollbackWindow", &o.RollbackWindow, 0},
	} {
		if *d.v < 0 {
			return o, fmt.Errorf("upgrade: Options.%s is negative (%v): use zero for the default", d.name, *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	switch {
	case o.MaxGenerations == 0:
		o.MaxGenerations = defaultMaxGenerations
	case o.MaxGenerations < 2:
		return o, fmt.Errorf("upgrade: Options.MaxGenerations is %d: an upgrade needs at least 2 generations alive (zero means %d)", o.MaxGenerations, defaultMaxGenerations)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	if o.Args != nil && len(o.Args) == 0 {
		return o, errors.New("upgrade: Options.Args is empty: it must hold at least argv[0], or be nil for os.Args")
	}
	o.Args = slices.Clone(o.Args)
	o.Env = slices.Clone(o.Env)
	o.UpgradeSignals = slices.Clone(o.UpgradeSignals)
	o.StopSignals = slices.Clone(o.StopSignals)
	return o, nil
}
