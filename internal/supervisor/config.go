package supervisor

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/handoff-go/handoff/internal/wire"
)

// Defaults for the zero values of [Config].
const (
	DefaultUpgradeTimeout = time.Minute
	DefaultDrainTimeout   = 30 * time.Second
)

// CrashPolicy says what to do when the worker dies on its own.
type CrashPolicy int

const (
	// CrashRestart starts a new worker, with exponential backoff (100ms
	// doubling to 10s, reset after 30s of uptime).
	CrashRestart CrashPolicy = iota
	// CrashExit ends the supervisor with the worker's exit status (1 if
	// it was killed by a signal).
	CrashExit
)

// ParseCrashPolicy parses "restart" or "exit".
func ParseCrashPolicy(s string) (CrashPolicy, error) {
	switch s {
	case "restart":
		return CrashRestart, nil
	case "exit":
		return CrashExit, nil
	}
	return 0, fmt.Errorf("%w: on-crash %q: want \"restart\" or \"exit\"", ErrConfig, s)
}

// String returns "restart" or "exit".
func (p CrashPolicy) String() string {
	switch p {
	case CrashRestart:
		return "restart"
	case CrashExit:
		return "exit"
	}
	return fmt.Sprintf("CrashPolicy(%d)", int(p))
}

// Listen is one socket the supervisor binds and hands to every worker.
type Listen struct {
	// Network is tcp, tcp4, tcp6 or unix (stream listeners), or udp, udp4,
	// udp6 or unixgram (datagram sockets).
	Network string
	// Addr is host:port, or a socket path for unix and unixgram.
	Addr string
}

// ParseListen parses "NETWORK:ADDR", e.g. "tcp:127.0.0.1:8080",
// "unix:/run/app.sock" or "udp::5353".
func ParseListen(s string) (Listen, error) {
	network, addr, ok := strings.Cut(s, ":")
	l := Listen{Network: network, Addr: addr}
	if !ok || addr == "" {
		return l, fmt.Errorf("%w: listen %q: want NETWORK:ADDRESS, e.g. tcp:127.0.0.1:8080, unix:/run/app.sock or udp::5353", ErrConfig, s)
	}
	return l, l.check()
}

func (l Listen) check() error {
	switch l.Network {
	case "tcp", "tcp4", "tcp6", "udp", "udp4", "udp6":
		if _, _, err := net.SplitHostPort(l.Addr); err != nil {
			return fmt.Errorf("%w: listen %s:%s: the address is not host:port (%v)", ErrConfig, l.Network, l.Addr, err)
		}
	case "unix", "unixgram":
		if l.Addr == "" {
			return fmt.Errorf("%w: listen %s: empty socket path", ErrConfig, l.Network)
		}
	default:
		return fmt.Errorf("%w: listen network %q: want tcp, tcp4, tcp6, unix, udp, udp4, udp6 or unixgram", ErrConfig, l.Network)
	}
	if err := wire.CheckName(l.Name()); err != nil {
		return fmt.Errorf("%w: listen %s: %w", ErrConfig, l, err)
	}
	return nil
}

// stream reports whether l is a listener rather than a datagram socket.
func (l Listen) stream() bool {
	switch l.Network {
	case "tcp", "tcp4", "tcp6", "unix":
		return true
	}
	return false
}

// Name is l's name in LISTEN_FDNAMES: the network, '/', and the address
// with '%' and ':' escaped ("tcp/127.0.0.1%3A8080"), as the upgrade
// package names its sockets ([wire.Key]).
func (l Listen) Name() string { return wire.Key(l.Network, l.Addr) }

// String returns the NETWORK:ADDR form.
func (l Listen) String() string { return l.Network + ":" + l.Addr }

// ParseReady parses the -ready flag: "notify" (zero: wait for READY=1) or
// "delay=DURATION" (ready when alive after DURATION).
func ParseReady(s string) (time.Duration, error) {
	if s == "notify" {
		return 0, nil
	}
	if v, ok := strings.CutPrefix(s, "delay="); ok {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return 0, fmt.Errorf("%w: ready %q: the delay must be a positive duration such as delay=2s", ErrConfig, s)
		}
		return d, nil
	}
	return 0, fmt.Errorf("%w: ready %q: want \"notify\" or \"delay=DURATION\" (e.g. delay=2s)", ErrConfig, s)
}

// Config describes what to supervise. The zero value of every field but
// Listen and Program works. [New] copies it; the caller's value is never
// written to.
type Config struct {
	// Listen are the sockets, bound once by Run and handed to every
	// worker at descriptors 3.. in this order. At least one is required.
	Listen []Listen

	// Reaper makes the supervisor an init for what its workers start: a
	// child subreaper (Linux), so that a process a worker leaves behind
	// is reparented to the supervisor, which reaps it when it exits (as
	// PID 1 of a container it would be anyway, and leave a zombie).
	// False: orphans go to the system's init.
	Reaper bool

	// Shim starts each worker without a shell: see starter.Config.Shim
	// (`handoff run` is its own shim). Nil: through /bin/sh.
	Shim []string

	// Program is the worker's command line: the program (looked up in
	// PATH if it has no '/') and its arguments. Required.
	Program []string

	// Env is the worker's environment, before the supervisor adds
	// LISTEN_FDS, LISTEN_FDNAMES, LISTEN_PID and NOTIFY_SOCKET (any
	// inherited LISTEN_*, HANDOFF, NOTIFY_SOCKET and WATCHDOG_* are
	// dropped). Nil means [os.Environ] at each start.
	Env []string

	// PIDFile, if set, is written with the supervisor's PID once the first
	// worker is ready, and removed when Run returns. Empty: no pidfile.
	PIDFile string

	// Control, if set, is the path of a unix socket serving the control
	// protocol (internal/control) with mode 0600, from the first worker's
	// readiness until Run returns. Empty: no control socket.
	Control string

	// ReadyDelay zero means a worker is ready when it sends READY=1 to
	// NOTIFY_SOCKET. A positive ReadyDelay means it is ready when it is
	// still alive after that long, for programs that cannot notify.
	ReadyDelay time.Duration

	// UpgradeTimeout bounds how long a new worker may take to become
	// ready (the first one too). Zero means DefaultUpgradeTimeout.
	UpgradeTimeout time.Duration

	// DrainTimeout is how long an old worker has after SIGTERM before it
	// is killed. Zero means DefaultDrainTimeout.
	DrainTimeout time.Duration

	// OnCrash says what to do when the worker dies on its own. Zero means
	// CrashRestart.
	OnCrash CrashPolicy

	// Stderr receives what workers write to their standard error, which
	// the supervisor reads through a pipe to report the tail of a failed
	// worker's. Nil means discard. Workers inherit the supervisor's
	// standard input and output.
	Stderr io.Writer

	// Logger receives the supervisor's events (crashes, upgrades,
	// STATUS= messages). Nil means discard.
	Logger *slog.Logger
}

// normalize returns a copy of cfg with defaults filled in, or an error
// wrapping ErrConfig.
func (cfg Config) normalize() (Config, error) {
	if len(cfg.Listen) == 0 {
		return cfg, fmt.Errorf("%w: no sockets to listen on: give at least one, e.g. -listen tcp:127.0.0.1:8080", ErrConfig)
	}
	seen := make(map[string]bool)
	for _, l := range cfg.Listen {
		if err := l.check(); err != nil {
			return cfg, err
		}
		if seen[l.Name()] {
			return cfg, fmt.Errorf("%w: %s is listed twice", ErrConfig, l)
		}
		seen[l.Name()] = true
	}
	if len(cfg.Program) == 0 || cfg.Program[0] == "" {
		return cfg, fmt.Errorf("%w: no program to run: give it after --, e.g. -- python3 server.py", ErrConfig)
	}
	switch {
	case cfg.UpgradeTimeout < 0:
		return cfg, fmt.Errorf("%w: UpgradeTimeout %v is negative", ErrConfig, cfg.UpgradeTimeout)
	case cfg.UpgradeTimeout == 0:
		cfg.UpgradeTimeout = DefaultUpgradeTimeout
	}
	switch {
	case cfg.DrainTimeout < 0:
		return cfg, fmt.Errorf("%w: DrainTimeout %v is negative", ErrConfig, cfg.DrainTimeout)
	case cfg.DrainTimeout == 0:
		cfg.DrainTimeout = DefaultDrainTimeout
	}
	if cfg.ReadyDelay < 0 {
		return cfg, fmt.Errorf("%w: ReadyDelay %v is negative", ErrConfig, cfg.ReadyDelay)
	}
	if cfg.ReadyDelay >= cfg.UpgradeTimeout {
		return cfg, fmt.Errorf("%w: the ready delay %v is not shorter than the upgrade timeout %v, so no worker could ever be ready", ErrConfig, cfg.ReadyDelay, cfg.UpgradeTimeout)
	}
	if cfg.OnCrash != CrashRestart && cfg.OnCrash != CrashExit {
		return cfg, fmt.Errorf("%w: OnCrash is %v", ErrConfig, cfg.OnCrash)
	}
	cfg.Listen = slices.Clone(cfg.Listen)
	cfg.Program = slices.Clone(cfg.Program)
	cfg.Shim = slices.Clone(cfg.Shim)
	cfg.Env = slices.Clone(cfg.Env)
	if cfg.Stderr == nil {
		cfg.Stderr = io.Discard
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg, nil
}
