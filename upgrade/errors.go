package upgrade

import (
	"errors"
	"fmt"
	"strings"
)

var (
	// ErrNotSupported is returned by New on platforms without unix
	// descriptor passing.
	ErrNotSupported = errors.New("upgrade: not supported on this platform")
	// ErrInProgress is returned by Upgrade while another upgrade of the
	// same process has not finished.
	ErrInProgress = errors.New("upgrade: an upgrade is already in progress: wait for its verdict and retry")
	// ErrNotReady is returned by Upgrade before Ready: a generation that
	// is not serving yet cannot hand over.
	ErrNotReady = errors.New("upgrade: this process has not called Ready yet, so it cannot hand over")
	// ErrStopped is returned by Upgrade after Stop, and wrapped in the
	// error of an upgrade that Stop interrupted.
	ErrStopped = errors.New("upgrade: the upgrader was stopped")
	// ErrHandedOver is returned by Upgrade once this process has handed
	// over to a new generation; upgrade the new one instead.
	ErrHandedOver = errors.New("upgrade: this process already handed over to a new generation; signal the process the pidfile names")
	// ErrTooManyGenerations is returned by Upgrade when the upgrade would
	// leave more than Options.MaxGenerations generations alive.
	ErrTooManyGenerations = errors.New("upgrade: too many generations alive")
	// ErrProbation is wrapped in the error of a child that died after it
	// said ready, within Options.Probation.
	ErrProbation = errors.New("upgrade: the new generation died during its probation")
	// ErrTimeout is wrapped in the error of a child that missed
	// Options.UpgradeTimeout.
	ErrTimeout = errors.New("upgrade: the new generation did not become ready in time")
)

// Stage says how far a failed upgrade got.
type Stage string

// The stages of a failed upgrade.
const (
	StageStart    Stage = "start"    // the child could not be started at all
	StageFailed   Stage = "failed"   // the child reported a failure
	StageExited   Stage = "exited"   // the child exited before it was ready
	StageTimeout  Stage = "timeout"  // the child missed UpgradeTimeout
	StageCanceled Stage = "canceled" // the caller's context ended, or Stop was called
	// StageProbation: the child said ready, then died within
	// Options.Probation, before it served a request.
	StageProbation Stage = "probation"
)

// ChildError reports a failed upgrade. The old generation keeps serving.
type ChildError struct {
	PID   int   // the child's PID; 0 when it never started
	Stage Stage // how far it got
	// ExitCode is the child's exit status once it was reaped: -1 when it
	// was killed by a signal or never started.
	ExitCode int
	// Signal names the signal that ended the child, if any ("killed",
	// "terminated").
	Signal string
	// Reason is the child's own words when Stage is StageFailed.
	Reason string
	// Stderr is the tail of what the child wrote to standard error before
	// it failed, at most 4 KiB.
	Stderr string
	// Status is the last STATUS= line a foreign child (Options.ForeignChild)
	// sent with sd_notify before it failed: such a program's way to say why.
	Status string
	Err    error // the cause
}

// Error says what happened to the child, with the tail of its stderr, and
// that the old generation keeps serving.
func (e *ChildError) Error() string {
	var b strings.Builder
	b.WriteString("upgrade: ")
	if e.PID != 0 {
		fmt.Fprintf(&b, "child %d ", e.PID)
	} else {
		b.WriteString("child ")
	}
	switch e.Stage {
	case StageStart:
		fmt.Fprintf(&b, "could not be started: %v", e.Err)
	case StageFailed:
		if e.Reason != "" {
			fmt.Fprintf(&b, "reported failure: %s", e.Reason)
		} else {
			fmt.Fprintf(&b, "broke the readiness protocol: %v", e.Err)
		}
	case StageExited:
		b.WriteString("exited " + e.how() + " before it was ready")
	case StageTimeout:
		fmt.Fprintf(&b, "was not ready in time and was stopped (%s)", e.how())
	case StageCanceled:
		fmt.Fprintf(&b, "was stopped before it was ready: %v", e.Err)
	case StageProbation:
		fmt.Fprintf(&b, "said ready, then died %s during its probation, before it served a request", e.how())
	default:
		fmt.Fprintf(&b, "failed: %v", e.Err)
	}
	if e.Status != "" {
		fmt.Fprintf(&b, " (its last status: %s)", e.Status)
	}
	if e.Stderr != "" {
		tail := strings.TrimSpace(e.Stderr)
		if len(tail) > 512 {
			tail = "..." + tail[len(tail)-512:]
		}
		fmt.Fprintf(&b, " (stderr tail: %s)", tail)
	}
	b.WriteString("; the old generation keeps serving")
	return b.String()
}

func (e *ChildError) how() string {
	switch {
	case e.Signal != "":
		return "by signal " + e.Signal
	case e.ExitCode >= 0:
		return fmt.Sprintf("with status %d", e.ExitCode)
	}
	return "in an unknown way"
}

// Unwrap returns the cause.
func (e *ChildError) Unwrap() error { return e.Err }
