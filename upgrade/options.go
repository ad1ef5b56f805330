package upgrade

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"time"
)

// Defaults for the zero values of [Options].
const (
	DefaultUpgradeTimeout = time.Minute
	DefaultDrainTimeout   = 30 * time.Second
	DefaultIdleGrace      = time.Second
	DefaultStopGrace      = 5 * time.Second
	DefaultMaxGenerations = 4
)

// Options configures an [Upgrader]. The zero value works: no pidfile, the
// default timeouts, the child started the way this process was started.
type Options struct {
	// PIDFile, if set, is rewritten atomically with the PID of each
	// generation once it is ready, and removed on a final stop. Its
	// directory is checked by New. Empty: no pidfile.
	PIDFile string

	// UpgradeTimeout bounds how long a new generation may take to become
	// ready; past it the child is stopped and the upgrade fails.
	// Zero: DefaultUpgradeTimeout (1 minute).
	UpgradeTimeout time.Duration

	// Probation is how long a new generation that said ready must stay
	// alive before this one hands over. Meanwhile this process alone keeps
	// serving (the child's Ready waits), so a child that dies in probation
	// costs no request: the pidfile is pointed back here and Upgrade
	// returns a *ChildError with StageProbation. The price: Upgrade, and
	// the child's first request, wait Probation longer.
	// Zero: no probation.
	Probation time.Duration

	// MaxGenerations caps the generations alive at once: the live one and
	// older ones still draining long-lived connections (a tableflip process
	// that handed over to a handoff build counts too). A process may
	// upgrade while older generations drain; an upgrade that would exceed
	// the cap is refused with ErrTooManyGenerations.
	// Zero: DefaultMaxGenerations (4). Values below 2 are an error.
	MaxGenerations int

	// DrainTimeout bounds the drain of an old generation in ServeHTTP and
	// ServeConns; what is still open then is closed.
	// Zero: DefaultDrainTimeout (30 seconds).
	DrainTimeout time.Duration

	// IdleGrace is how long ServeHTTP lets keep-alive connections bring
	// their next request (answered with "Connection: close") before idle
	// ones are closed. It never extends past DrainTimeout.
	// Zero: DefaultIdleGrace (1 second).
	IdleGrace time.Duration

	// StopGrace is the time a failed child gets between SIGTERM and
	// SIGKILL. Zero: DefaultStopGrace (5 seconds).
	StopGrace time.Duration

	// Logger receives what cannot be returned as an error: signals and
	// their outcomes, hand-overs, drains cut short. Nil: discard.
	Logger *slog.Logger

	// Path is the program started as the next generation. Empty: the path
	// this program was started with (os.Args[0] made absolute at New),
	// opened anew at each upgrade, so that replacing the file or flipping
	// a symlink such as current -> releases/N starts the new build. A
	// wrapper script must exec the program: a failed child is stopped by
	// signalling its PID only.
	Path string
	// Args are the next generation's arguments, including argv[0].
	// Nil: os.Args as at New.
	Args []string
	// Env is the next generation's environment. Nil: os.Environ() as at
	// New, less the variables handoff itself sets.
	Env []string
	// Dir is the next generation's working directory. Empty: the working
	// directory at New.
	Dir string
	// Stderr receives the next generation's standard error until it is
	// ready (afterwards the child writes to this process's own stderr
	// directly). The last 4 KiB are also kept for the error of a failed
	// upgrade. Nil: os.Stderr.
	Stderr io.Writer

	// ForeignChild says the next generation is not a handoff program but
	// a systemd-style one (go-systemd's activation package,
	// sd_listen_fds): it is started through /bin/sh, which sets
	// LISTEN_PID to the child's own PID before it execs the program, as
	// such programs require; it gets its sockets as LISTEN_FDS and no
	// handoff control files; and it says ready by sending READY=1 with
	// sd_notify to a private NOTIFY_SOCKET. This process then writes the
	// pidfile with the child's PID and hands over as usual. The child's
	// stderr goes straight to this process's stderr (a failure cannot
	// quote it; ChildError.Status carries the last STATUS= it sent
	// instead), and its later notifications find no socket: under
	// systemd this process sends MAINPID for it, but nobody pings a
	// systemd watchdog after the hand-over (WatchdogSec would kill the
	// service), so the child is not given WATCHDOG_USEC. The shell sets
	// PWD and may drop variables whose names are not shell identifiers.
	// False (zero) means the child is a handoff program.
	ForeignChild bool

	// ControlSocket, if set, is the path of a unix socket (mode 0600,
	// clients of this UID or root only) on which `handoff upgrade` asks for
	// an upgrade and gets the verdict, and `handoff status` asks what this
	// process is. It is handed to each new generation like a listener.
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

// withDefaults returns a copy of o with zero values replaced and checks it.
func (o Options) withDefaults() (Options, error) {
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"UpgradeTimeout", &o.UpgradeTimeout, DefaultUpgradeTimeout},
		{"DrainTimeout", &o.DrainTimeout, DefaultDrainTimeout},
		{"IdleGrace", &o.IdleGrace, DefaultIdleGrace},
		{"StopGrace", &o.StopGrace, DefaultStopGrace},
		{"Probation", &o.Probation, 0},
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
		o.MaxGenerations = DefaultMaxGenerations
	case o.MaxGenerations < 2:
		return o, fmt.Errorf("upgrade: Options.MaxGenerations is %d: an upgrade needs at least 2 generations alive (zero means %d)", o.MaxGenerations, DefaultMaxGenerations)
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
