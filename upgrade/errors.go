package upgrade

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/handoff-go/handoff/internal/starter"
	"github.com/handoff-go/handoff/internal/tail"
)

var (
	// ErrNotSupported is returned by New on platforms without unix
	// descriptor passing (Windows), and wrapped by Upgrade in a process
	// that is PID 1 of its PID namespace (a container's entrypoint): when
	// it handed over and exited, the kernel would end the namespace and
	// the new generation with it. Make `handoff run` the entrypoint.
	ErrNotSupported = errors.New("upgrade: not supported")
	// ErrInProgress is returned by Upgrade while another upgrade of this
	// process runs. Wait for that one's verdict, then retry if need be.
	ErrInProgress = errors.New("upgrade: another upgrade is in progress")
	// ErrNotReady is returned by Upgrade before Ready: a generation that
	// does not serve yet has nothing to hand over.
	ErrNotReady = errors.New("upgrade: not ready yet")
	// ErrStopped is returned by calls after Stop, and wrapped in the
	// error of an upgrade that Stop cancelled.
	ErrStopped = errors.New("upgrade: stopped")
	// ErrHandedOver is returned by Upgrade once this process has handed
	// over to a new generation: upgrade that one (the pidfile names it).
	ErrHandedOver = errors.New("upgrade: already handed over to a new generation")
	// ErrTooManyGenerations is returned by Upgrade when the upgrade would
	// leave more than Options.MaxGenerations generations alive: wait for
	// the oldest to finish draining, or raise MaxGenerations.
	ErrTooManyGenerations = errors.New("upgrade: too many generations alive")
)

// Stage says how far a failed new generation got.
type Stage string

// The stages of a failed upgrade. `handoff upgrade` and `handoff run`
// report the same words.
const (
	StageStart    Stage = "start"    // the child could not be started at all
	StageFailed   Stage = "failed"   // the child reported a failure (Fail), or broke the protocol
	StageExited   Stage = "exited"   // the child exited before it was ready
	StageTimeout  Stage = "timeout"  // the child missed Options.UpgradeTimeout and was stopped
	StageCanceled Stage = "canceled" // the caller's context ended, or Stop was called
	// StageProbation: the child said ready, then died within
	// Options.Probation, before it served a request.
	StageProbation Stage = "probation"
	// StageCheck: the program failed Options.Check, and was not started.
	StageCheck Stage = "check"
)

// ChildError reports a failed upgrade: the new generation was stopped and
// reaped, and this one keeps serving (unless Stop cancelled the upgrade).
type ChildError struct {
	PID   int   // the child's PID; 0 if it never started
	Stage Stage // how far it got
	// ProcessState is how the child ended, as os/exec reports it: its
	// exit code, or the signal that killed it. Nil if it never started or
	// its end could not be learned.
	ProcessState *os.ProcessState
	// Reason is the child's own words, from its Fail, at StageFailed.
	Reason string
	// Stderr is the last 4 KiB the child wrote to its standard error
	// before it failed.
	Stderr string
	// Status is the last STATUS= a foreign child (Options.ForeignChild)
	// sent with sd_notify: such a program's way of saying why.
	Status string
	// Err is the cause: the error that kept the child from starting, a
	// broken message, or ErrStopped or the context's error at
	// StageCanceled.
	Err error
}

// Error says what happened to the child, with its own words or the tail of
// its stderr, and what became of this generation.
func (e *ChildError) Error() string {
	var b strings.Builder
	b.WriteString("upgrade: new generation")
	if e.PID != 0 {
		fmt.Fprintf(&b, " (PID %d)", e.PID)
	}
	how := starter.How(e.ProcessState)
	switch e.Stage {
	case StageStart:
		fmt.Fprintf(&b, " could not be started: %v", e.Err)
	case StageCheck:
		fmt.Fprintf(&b, " was not started: its program failed Options.Check: %v", e.Err)
	case StageFailed:
		if e.Reason != "" {
			fmt.Fprintf(&b, " failed: %s", e.Reason)
		} else {
			fmt.Fprintf(&b, " broke the hand-over protocol: %v", e.Err)
		}
	case StageExited:
		fmt.Fprintf(&b, " exited %s before it was ready", how)
	case StageTimeout:
		fmt.Fprintf(&b, " was not ready in time and was stopped: %v; it ended %s", e.Err, how)
	case StageCanceled:
		if errors.Is(e.Err, ErrStopped) {
			b.WriteString(" was stopped before it was ready, as this generation is stopping")
		} else {
			fmt.Fprintf(&b, " was stopped before it was ready: %v", e.Err)
		}
	case StageProbation:
		fmt.Fprintf(&b, " said ready, then died %s during its probation, before it served a request", how)
	default:
		fmt.Fprintf(&b, " failed: %v", e.Err)
	}
	if e.Status != "" {
		fmt.Fprintf(&b, " (its last status: %s)", e.Status)
	}
	if s := tail.Excerpt(e.Stderr); s != "" {
		fmt.Fprintf(&b, " (stderr tail: %s)", s)
	}
	if !errors.Is(e.Err, ErrStopped) {
		b.WriteString("; the old generation keeps serving")
	}
	return b.String()
}

// Unwrap returns the cause.
func (e *ChildError) Unwrap() error { return e.Err }
