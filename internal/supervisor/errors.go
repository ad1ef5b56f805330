package supervisor

import (
	"errors"
	"fmt"
)

var (
	// ErrNotSupported is returned by [New] on platforms without unix
	// descriptor inheritance.
	ErrNotSupported = errors.New("supervisor: not supported on this platform")
	// ErrConfig is wrapped by every error [New] returns for a [Config] that
	// cannot be used as given; the message says which field to fix.
	ErrConfig = errors.New("supervisor: invalid config")
)

// ExitError is returned by [Supervisor.Run] when the supervisor ends
// because of its worker's exit status: a worker that exited with a
// non-zero status, or was killed by a signal other than the SIGTERM that
// stopped it. Code is the status `handoff run` exits with.
type ExitError struct {
	PID    int    // the worker
	Code   int    // exit status to pass on: the worker's, or 1 if it was signalled
	Signal string // the signal that killed the worker, if any
	Crash  bool   // the worker died on its own (Config.OnCrash is CrashExit)
}

// Error says how the worker ended.
func (e *ExitError) Error() string {
	how := fmt.Sprintf("exited with status %d", e.Code)
	if e.Signal != "" {
		how = "was killed by signal " + e.Signal
	}
	if e.Crash {
		return fmt.Sprintf("supervisor: worker %d %s on its own; exiting as -on-crash=exit asks", e.PID, how)
	}
	return fmt.Sprintf("supervisor: worker %d %s when it was stopped", e.PID, how)
}
