package starter

import (
	"errors"
	"io"
	"log/slog"
	"syscall"
	"time"

	"github.com/handoff-go/handoff/fdpass"
)

// ErrNotSupported is returned by [Start] on platforms without unix
// descriptor inheritance.
var ErrNotSupported = errors.New("starter: not supported on this platform")

// Config says what to start and how. [Start] does not keep or modify it.
type Config struct {
	// Path is the program, looked up in PATH if it has no '/'; Args its
	// arguments after argv[0] (the program's argv[0] is its path).
	Path string
	Args []string
	// Env is its environment (nil: os.Environ()). Variables describing
	// inherited files and NOTIFY_SOCKET are replaced; WATCHDOG_USEC and
	// WATCHDOG_PID are dropped (nobody here reads its pings).
	Env []string
	Dir string // its working directory; empty: this process's
	// Files are its descriptors 3.., named in LISTEN_FDNAMES.
	Files []fdpass.Named
	// Stdin, Stdout and Stderr are its standard files; nil: /dev/null.
	// An *os.File is handed to the program as it is, and then outlives
	// this process in it; anything else is fed or read through a pipe of
	// the starter's own, for the program's whole life (its writes are
	// read on even after a writer fails, so a full pipe never blocks it).
	// With TailStderr, stderr always goes through a pipe, copied to Stderr,
	// and its last 4 KiB are kept ([Process.StderrTail]). A Stdin reader
	// is copied until it ends or the program's stdin is closed; one that
	// blocks forever keeps its goroutine. Stdout and Stderr may be the
	// same writer: it gets one Write at a time.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	TailStderr     bool
	// ReadyDelay zero: the program is ready when it sends READY=1.
	// Positive: also when it is still running after ReadyDelay, for
	// programs that cannot notify.
	ReadyDelay time.Duration
	// Shim, if set, starts the program without a shell: Shim[0] runs with
	// arguments Shim[1:], the program's path and Args, and must set
	// LISTEN_PID to its own PID and exec the program in its place — a
	// binary that calls [ExecShim] does. Nil: /bin/sh does it (see
	// fdpass.Start), which then needs a shell, and passes on only
	// variables whose names are shell identifiers.
	Shim []string
	// Sys is handed to os/exec (Pdeathsig, Setpgid, ...); nil: none.
	Sys *syscall.SysProcAttr
	// Logger receives its STATUS= lines, notifications from other
	// processes, and a kill after [Process.Stop]'s grace. Nil: discard.
	Logger *slog.Logger
}
