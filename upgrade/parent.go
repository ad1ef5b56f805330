package upgrade

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/handoff-go/handoff/internal/tail"
	"github.com/handoff-go/handoff/pidfile"
	"github.com/handoff-go/handoff/readiness"
)

// exitedGrace is how long the readiness channel gets to deliver a last
// message after the child process has been reaped.
const exitedGrace = 200 * time.Millisecond

// errExited cancels the readiness wait when the child has been reaped but
// something (a grandchild) still holds its end of the channel.
var errExited = errors.New("upgrade: child exited")

// child is a new generation that has been started but is not yet ready.
type child struct {
	proc    *os.Process
	pid     int
	ctl     *os.File         // our end of the readiness channel
	exited  chan struct{}    // closed once the process has been reaped
	state   *os.ProcessState // nil if waiting failed
	waitErr error
	stderr  *tail.Buffer
	// stderrDone is closed when the child's stderr pipe is drained or,
	// for a foreign child, when its relay has read what it sent before
	// it said ready or exited.
	stderrDone chan struct{}

	mu     sync.Mutex
	status string // a foreign child's last STATUS= before READY=1
}

func (c *child) lastStatus() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status
}

// Upgrade starts a new generation of the program with this process's
// sockets and blocks until it is ready (nil) or has failed. On success
// [Upgrader.Exit] is closed: this process should drain and exit. On
// failure the child has been stopped and reaped, the pidfile still names
// this process, which keeps serving, and the error is a [*ChildError]
// saying why, unless the upgrade could not begin at all ([ErrInProgress],
// [ErrNotReady], [ErrStopped], [ErrHandedOver]).
//
// The upgrade is bounded by ctx and by Options.UpgradeTimeout.
func (u *Upgrader) Upgrade(ctx context.Context) error {
	start := time.Now()
	files, err := u.begin()
	if err != nil {
		u.record(start, 0, err)
		if errors.Is(err, ErrTooManyGenerations) {
			// A refusal is still an answer to a reload systemd asked for.
			u.notify(readiness.Reloading())
			u.notify(status("upgrade refused: %v", err), "READY=1")
		}
		return err
	}
	defer u.end()
	u.notify(readiness.Reloading(), status("upgrading: starting generation %d", u.generation+1))
	c, err := u.start(files)
	if err == nil {
		u.log.Info("upgrade: new generation started", slog.Int("child_pid", c.pid), slog.Int("generation", u.generation+1))
		err = u.await(ctx, c)
	}
	if err != nil {
		u.record(start, 0, err)
		u.log.Error("upgrade failed; this generation keeps serving", slog.Any("error", err))
		if !errors.Is(err, ErrStopped) {
			u.notify(status("upgrade failed: %v", err), "READY=1")
		}
		return err
	}
	u.record(start, c.pid, nil)
	u.handOver(c)
	u.log.Info("upgrade: new generation is ready; this one drains",
		slog.Int("child_pid", c.pid), slog.Duration("took", time.Since(start)))
	return nil
}

// begin refuses an upgrade that cannot start and snapshots the files.
func (u *Upgrader) begin() ([]*handed, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	switch {
	case u.stopped:
		return nil, ErrStopped
	case u.childPID != 0:
		return nil, fmt.Errorf("%w (PID %d)", ErrHandedOver, u.childPID)
	case !u.ready:
		return nil, ErrNotReady
	case u.upgrading:
		return nil, ErrInProgress
	}
	if err := u.checkGenerations(); err != nil {
		return nil, err
	}
	u.upgrading = true
	u.upgradeDone = make(chan struct{})
	return slices.Clone(u.files), nil
}

func (u *Upgrader) end() {
	u.mu.Lock()
	u.upgrading = false
	close(u.upgradeDone)
	u.upgradeDone = nil
	u.mu.Unlock()
}

// await waits for the child's verdict, and its probation, and on failure
// stops and reaps it and repairs the pidfile.
func (u *Upgrader) await(ctx context.Context, c *child) error {
	ce := u.verdict(ctx, c)
	if ce == nil {
		return nil
	}
	u.stopChild(c, ce.Stage == StageExited || ce.Stage == StageProbation)
	if c.state == nil {
		ce.Err = errors.Join(ce.Err, fmt.Errorf("exit status unknown: %w", c.waitErr))
	} else if ws, ok := c.state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		ce.Signal = ws.Signal().String()
	} else {
		ce.ExitCode = c.state.ExitCode()
	}
	select {
	case <-c.stderrDone:
	case <-time.After(exitedGrace): // a grandchild holds the pipe
	}
	ce.Stderr = c.stderr.String()
	ce.Status = c.lastStatus()
	c.ctl.Close()
	u.restorePIDFile(c.pid)
	return ce
}

// verdict returns nil once the child has said ready, outlived its
// probation and been told to go; otherwise what went wrong.
func (u *Upgrader) verdict(ctx context.Context, c *child) *ChildError {
	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	tctx, cancelT := context.WithTimeoutCause(wctx, u.opts.UpgradeTimeout, ErrTimeout)
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
	err := readiness.Wait(tctx, c.ctl)
	if err == nil {
		return u.probation(ctx, c)
	}
	ce := &ChildError{PID: c.pid, ExitCode: -1, Err: err}
	var failed *readiness.FailedError
	switch {
	case errors.As(err, &failed):
		ce.Stage, ce.Reason = StageFailed, failed.Reason
	case errors.Is(err, readiness.ErrClosed):
		ce.Stage = StageExited
	case tctx.Err() != nil:
		switch cause := context.Cause(tctx); {
		case errors.Is(cause, ErrTimeout):
			ce.Stage, ce.Err = StageTimeout, fmt.Errorf("%w (%v)", ErrTimeout, u.opts.UpgradeTimeout)
		case errors.Is(cause, errExited):
			ce.Stage, ce.Err = StageExited, readiness.ErrClosed
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

// probation watches a child that said ready for Options.Probation, while
// this process alone keeps serving (the child waits for go before it
// accepts), then tells it to go and waits for it to confirm that it has
// taken over (its pidfile written) — all while this process still serves.
func (u *Upgrader) probation(ctx context.Context, c *child) *ChildError {
	p := u.opts.Probation
	fail := func(stage Stage, err error) *ChildError {
		ce := &ChildError{PID: c.pid, Stage: stage, ExitCode: -1, Err: err}
		var failed *readiness.FailedError
		if errors.As(err, &failed) {
			ce.Stage, ce.Reason = StageFailed, failed.Reason
		}
		return ce
	}
	died := func(err error) *ChildError {
		if p > 0 {
			return fail(StageProbation, fmt.Errorf("%w (%v): %w", ErrProbation, p, err))
		}
		return fail(StageExited, err)
	}
	// The child's next words: "live" after go, or "failed: ..." at any
	// point; EOF if it dies.
	rctx, rcancel := context.WithCancel(context.Background())
	defer rcancel()
	next := make(chan error, 1)
	go func() { next <- readiness.WaitLive(rctx, c.ctl) }()
	if p > 0 {
		u.log.Info("upgrade: new generation is ready; probation", slog.Int("child_pid", c.pid), slog.Duration("probation", p))
		t := time.NewTimer(p)
		defer t.Stop()
		select {
		case <-t.C:
		case err := <-next:
			if err == nil {
				err = errors.New("upgrade: the child said live before go")
			}
			return died(err)
		case <-c.exited:
			return died(readiness.ErrClosed)
		case <-u.stopC:
			return fail(StageCanceled, ErrStopped)
		case <-ctx.Done():
			return fail(StageCanceled, ctx.Err())
		}
	}
	if err := readiness.Go(c.ctl); err != nil {
		return died(err)
	}
	t := time.NewTimer(u.opts.UpgradeTimeout)
	defer t.Stop()
	select {
	case err := <-next:
		switch {
		case err == nil:
			return nil
		case errors.Is(err, readiness.ErrClosed):
			return fail(StageExited, err)
		default:
			return fail(StageFailed, err)
		}
	case <-t.C:
		return fail(StageTimeout, fmt.Errorf("%w: no word after go (%v)", ErrTimeout, u.opts.UpgradeTimeout))
	case <-u.stopC:
		return fail(StageCanceled, ErrStopped)
	case <-ctx.Done():
		return fail(StageCanceled, ctx.Err())
	}
}

// stopChild makes sure a failed child is gone and reaped: SIGTERM, then
// SIGKILL after StopGrace. A child that is already exiting gets StopGrace
// to finish before it is signalled at all.
func (u *Upgrader) stopChild(c *child, exiting bool) {
	if exiting {
		select {
		case <-c.exited:
			return
		case <-time.After(u.opts.StopGrace):
		}
	}
	c.proc.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
		return
	case <-time.After(u.opts.StopGrace):
	}
	u.log.Warn("child ignored SIGTERM; killing it", slog.Int("child_pid", c.pid))
	c.proc.Kill()
	<-c.exited
}

// restorePIDFile repairs the pidfile after a failed upgrade. A handoff
// child writes it at Ready, and may still be killed after that (its
// "ready" lost the race with the timeout or Stop), and its own stop may
// have removed the file again. While this process serves, the file must
// name it; once it is stopping, it must name nobody who is gone.
func (u *Upgrader) restorePIDFile(childPID int) {
	path := u.opts.PIDFile
	if path == "" {
		return
	}
	pid, err := pidfile.Read(path)
	missing := errors.Is(err, os.ErrNotExist)
	ours, childs := err == nil && pid == os.Getpid(), err == nil && pid == childPID
	u.mu.Lock()
	stopped := u.stopped
	u.mu.Unlock()
	switch {
	case stopped && (ours || childs):
		if err := pidfile.Remove(path, pid); err != nil {
			u.log.Warn("could not remove pidfile", slog.String("path", path), slog.Any("error", err))
		}
	case !stopped && (childs || missing):
		if err := u.writePID(path, os.Getpid()); err != nil {
			u.log.Error("could not point the pidfile back at this process", slog.Any("error", err))
		}
	}
}

// handOver records that c is the live generation now and releases servers
// to drain.
func (u *Upgrader) handOver(c *child) {
	u.mu.Lock()
	if u.wdCancel != nil {
		u.wdCancel() // before MAINPID: a ping after it would be refused
		u.wdCancel = nil
	}
	u.mu.Unlock()
	if u.sd != nil {
		u.notify("MAINPID="+strconv.Itoa(c.pid), "READY=1",
			status("serving: generation %d, pid %d (upgraded from pid %d)", u.generation+1, c.pid, os.Getpid()))
		if err := readiness.Main(c.ctl); err != nil {
			u.log.Warn("could not tell the new generation it is the main process", slog.Any("error", err))
		}
	}
	u.mu.Lock()
	u.main = false
	u.childPID = c.pid
	u.childCtl = c.ctl // held open until this process exits: the child learns of it
	for _, h := range u.files {
		if h.unix != nil {
			h.unix.SetUnlinkOnClose(false) // the path is the new generation's now
		}
	}
	u.mu.Unlock()
	u.exit()
}
