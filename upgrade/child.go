package upgrade

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"syscall"
	"time"

	"github.com/handoff-go/handoff/internal/wire"
)

// exitedGrace is how long the readiness channel gets to deliver a last
// message after the child process has been reaped.
const exitedGrace = 200 * time.Millisecond

// errExited cancels the readiness wait when the child has been reaped but
// something (a program it started) still holds its end of the channel.
var errExited = errors.New("child exited")

// child is a next generation this process started, as this process sees
// it: a handoff program (start_unix.go) or a foreign one (foreign_unix.go),
// which a relay makes speak the same protocol on ctl.
type child struct {
	pid    int
	ctl    *os.File                // our end of the readiness channel
	exited <-chan struct{}         // closed once the process has been reaped
	state  func() *os.ProcessState // how it ended, once exited; nil if unknown
	signal func(os.Signal) error
	// settled is closed once what the child said before it failed (its
	// stderr pipe, a foreign child's notifications) has been read.
	settled <-chan struct{}
	stderr  func() string // the tail of its stderr
	status  func() string // a foreign child's last STATUS=
	// release is called once the child is live or gone, to let go of
	// what only the start needed (a foreign child's notify socket).
	release func()
	// pass passes connections to it; nil where there is no connection
	// channel (a foreign child, a platform without one).
	pass *passer
	// probation is how long it must stay alive after ready before go.
	probation time.Duration
	// lines reads ctl, from the start to the end of its life.
	lines *wire.Lines
	// goAhead says go was sent as it started: without probation, go
	// follows ready anyway, and sent ahead it spares the child a round
	// trip through this process, busy serving, before it takes over.
	goAhead bool
}

// await waits for the child's verdict, and its probation, and on failure
// stops and reaps it and repairs the pidfile.
func (u *Upgrader) await(ctx context.Context, c *child) error {
	ce := u.verdict(ctx, c)
	if ce == nil {
		return nil
	}
	if ce.Stage == StageExited || ce.Stage == StageProbation {
		u.settle(c) // it is exiting, or gone
	} else {
		u.stop(c)
	}
	ce.ProcessState = c.state()
	select {
	case <-c.settled:
	case <-time.After(exitedGrace): // a program it started holds the pipe
	}
	ce.Stderr, ce.Status = c.stderr(), c.status()
	c.ctl.Close()
	if c.pass != nil {
		c.pass.close()
	}
	c.release()
	u.restorePIDFile(c.pid)
	return ce
}

// verdict returns nil once the child has said ready, outlived its
// probation and been told to go; otherwise what went wrong.
func (u *Upgrader) verdict(ctx context.Context, c *child) *ChildError {
	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	tctx, cancelT := context.WithTimeoutCause(wctx, u.opts.UpgradeTimeout, errTimeout)
	defer cancelT()
	go func() {
		select {
		case <-u.stopC:
			cancel(ErrStopped)
		case <-c.exited:
			select {
			case <-time.After(exitedGrace):
				cancel(errExited)
			case <-wctx.Done():
			}
		case <-wctx.Done():
		}
	}()
	err := c.lines.Wait(tctx)
	if err == nil {
		return u.probation(ctx, c)
	}
	ce := &ChildError{PID: c.pid, Err: err}
	var failed *wire.FailedError
	switch {
	case errors.As(err, &failed):
		ce.Stage, ce.Reason = StageFailed, failed.Reason
	case errors.Is(err, wire.ErrClosed):
		ce.Stage = StageExited
	case tctx.Err() != nil:
		switch cause := context.Cause(tctx); {
		case errors.Is(cause, errTimeout):
			ce.Stage, ce.Err = StageTimeout, fmt.Errorf("%w within %v", errTimeout, u.opts.UpgradeTimeout)
		case errors.Is(cause, errExited):
			ce.Stage, ce.Err = StageExited, wire.ErrClosed
		case errors.Is(cause, ErrStopped):
			ce.Stage, ce.Err = StageCanceled, ErrStopped
		default:
			ce.Stage, ce.Err = StageCanceled, ctx.Err()
		}
	default: // garbage on the channel, or it broke
		ce.Stage = StageFailed
	}
	return ce
}

// errTimeout is the cause of StageTimeout.
var errTimeout = errors.New("no word from it")

// probation watches a child that said ready for Options.Probation, while
// this process alone keeps serving (the child waits for go before it
// accepts), then tells it to go and waits for it to confirm that it has
// taken over (its pidfile written) — all while this process still serves.
func (u *Upgrader) probation(ctx context.Context, c *child) *ChildError {
	p := c.probation
	fail := func(stage Stage, err error) *ChildError {
		ce := &ChildError{PID: c.pid, Stage: stage, Err: err}
		var failed *wire.FailedError
		if errors.As(err, &failed) {
			ce.Stage, ce.Reason = StageFailed, failed.Reason
		}
		return ce
	}
	died := func(err error) *ChildError {
		if p > 0 {
			return fail(StageProbation, fmt.Errorf("died within the probation of %v: %w", p, err))
		}
		return fail(StageExited, err)
	}
	live := func(err error) *ChildError {
		switch {
		case err == nil:
			return nil
		case errors.Is(err, wire.ErrClosed):
			return fail(StageExited, err)
		default:
			return fail(StageFailed, err)
		}
	}
	// A child sent go ahead says ready and live in one message, and the
	// read that brought ready brought live as a rule: taken at once, with
	// no goroutine to wait for it, which a busy process schedules late
	// (68 µs p50 on an idle 2-CPU VM).
	if c.goAhead && c.lines.Buffered() {
		return live(c.lines.WaitLive(ctx))
	}
	// The child's next words: "live" after go, or "failed: ..." at any
	// point; EOF if it dies.
	rctx, rcancel := context.WithCancel(context.Background())
	defer rcancel()
	next := make(chan error, 1)
	go func() { next <- c.lines.WaitLive(rctx) }()
	if p > 0 {
		u.log.Info("upgrade: new generation is ready; probation", slog.Int("child_pid", c.pid), slog.Duration("probation", p))
		t := time.NewTimer(p)
		defer t.Stop()
		select {
		case <-t.C:
		case err := <-next:
			if err == nil {
				err = errors.New("it said live before go")
			}
			return died(err)
		case <-c.exited:
			return died(wire.ErrClosed)
		case <-u.stopC:
			return fail(StageCanceled, ErrStopped)
		case <-ctx.Done():
			return fail(StageCanceled, ctx.Err())
		}
	}
	if !c.goAhead {
		if err := wire.Go(c.ctl); err != nil {
			return died(err)
		}
	}
	t := time.NewTimer(u.opts.UpgradeTimeout)
	defer t.Stop()
	select {
	case err := <-next:
		return live(err)
	case <-t.C:
		return fail(StageTimeout, fmt.Errorf("%w within %v of go", errTimeout, u.opts.UpgradeTimeout))
	case <-u.stopC:
		return fail(StageCanceled, ErrStopped)
	case <-ctx.Done():
		return fail(StageCanceled, ctx.Err())
	}
}

// stop makes sure a failed child is gone and reaped: SIGTERM, then
// SIGKILL after StopGrace.
func (u *Upgrader) stop(c *child) {
	c.signal(syscall.SIGTERM)
	select {
	case <-c.exited:
		return
	case <-time.After(u.opts.StopGrace):
	}
	u.log.Warn("the new generation ignored SIGTERM; killing it", slog.Int("child_pid", c.pid))
	c.signal(os.Kill)
	<-c.exited
}

// settle gives a child that is exiting on its own StopGrace to finish,
// and then stops it.
func (u *Upgrader) settle(c *child) {
	select {
	case <-c.exited:
	case <-time.After(u.opts.StopGrace):
		u.stop(c)
	}
}

// exitSignal names the signal that ended a process, if one did.
func exitSignal(st *os.ProcessState) string {
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return ws.Signal().String()
	}
	return ""
}
