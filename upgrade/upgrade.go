package upgrade

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"time"

	"github.com/handoff-go/handoff/internal/control"
	"github.com/handoff-go/handoff/pidfile"
)

// Upgrade starts a new generation of the program with this process's
// sockets and blocks until it is live (nil) or has failed. On success
// this process drains: [Upgrader.Exit] closes once the BeforeDrain hooks
// have run. On failure the child has been stopped and reaped, the pidfile
// still names this process, which keeps serving, and the error is a
// [*ChildError] saying why — unless the upgrade could not begin at all
// ([ErrInProgress], [ErrNotReady], [ErrStopped], [ErrHandedOver],
// [ErrTooManyGenerations]).
//
// The upgrade is bounded by ctx and by Options.UpgradeTimeout.
func (u *Upgrader) Upgrade(ctx context.Context) error {
	_, err := u.upgrade(ctx)
	return err
}

// upgrade runs one upgrade and returns its own verdict, for the control
// socket: what another upgrade did meanwhile is that one's answer.
func (u *Upgrader) upgrade(ctx context.Context) (control.UpgradeResult, error) {
	res := control.UpgradeResult{OldPID: os.Getpid(), StartedAt: time.Now()}
	done := func(err error) (control.UpgradeResult, error) {
		res.TookMS = float64(time.Since(res.StartedAt).Microseconds()) / 1000
		if err == nil {
			res.OK = true
			return res, nil
		}
		res.Error = err.Error()
		var ce *ChildError
		if errors.As(err, &ce) {
			res.NewPID, res.Stage, res.Reason, res.Stderr = ce.PID, string(ce.Stage), ce.Reason, ce.Stderr
			if st := ce.ProcessState; st != nil {
				if code := st.ExitCode(); code >= 0 {
					res.ExitCode = &code
				} else {
					res.Signal = exitSignal(st)
				}
			}
		}
		return res, err
	}
	files, alive, err := u.begin()
	if err != nil {
		if errors.Is(err, ErrTooManyGenerations) || errors.Is(err, ErrNotSupported) {
			u.sd.refused(err)
		}
		res.Refused = true
		return done(err)
	}
	defer u.end()
	gen := u.gen + 1
	u.sd.upgrading(gen)
	c, err := u.start(files, alive)
	if err == nil {
		res.NewPID = c.pid
		u.log.Info("upgrade: new generation started", slog.Int("child_pid", c.pid), slog.Int("generation", gen))
		err = u.await(ctx, c)
	}
	defer func() { u.record(res) }()
	if err != nil {
		u.log.Error("upgrade failed; this generation keeps serving", slog.Any("error", err))
		if !errors.Is(err, ErrStopped) {
			u.sd.failed(err)
		}
		return done(err)
	}
	u.handOver(c, gen)
	u.log.Info("upgrade: new generation is live; this one drains",
		slog.Int("child_pid", c.pid), slog.Duration("took", time.Since(res.StartedAt)))
	return done(nil)
}

// errPID1 refuses an upgrade in PID 1 of a PID namespace.
var errPID1 = fmt.Errorf("%w in PID 1 of a PID namespace: this process is a container's entrypoint, say, and when it handed over and exited the kernel would end the namespace with every process in it, the new generation too; make `handoff run` the entrypoint, which keeps its PID and upgrades the server it runs", ErrNotSupported)

// begin refuses an upgrade that cannot start and snapshots the files and
// the older generations alive.
func (u *Upgrader) begin() ([]*handed, []*elder, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	switch {
	case u.stopped:
		return nil, nil, ErrStopped
	case u.phase == handedOver:
		return nil, nil, fmt.Errorf("%w (PID %d): upgrade that one", ErrHandedOver, u.successor.pid)
	case u.phase == starting:
		return nil, nil, fmt.Errorf("%w: call Ready before Upgrade", ErrNotReady)
	case u.phase == upgrading:
		return nil, nil, ErrInProgress
	case os.Getpid() == 1:
		return nil, nil, errPID1
	}
	alive := u.aliveElders()
	if err := u.checkGenerations(alive); err != nil {
		return nil, nil, err
	}
	u.phase = upgrading
	u.upgradeDone = make(chan struct{})
	return slices.Clone(u.files), alive, nil
}

func (u *Upgrader) end() {
	u.mu.Lock()
	failed := u.phase == upgrading
	if failed {
		u.phase = live
	}
	close(u.upgradeDone)
	u.upgradeDone = nil
	u.mu.Unlock()
	if failed {
		u.stockKit() // for the next try
	}
}

// record keeps the verdict of the last upgrade that ran, for the control
// socket's status.
func (u *Upgrader) record(res control.UpgradeResult) {
	u.mu.Lock()
	u.last = &res
	u.mu.Unlock()
}

// handOver records that c is the live generation now and starts the drain.
func (u *Upgrader) handOver(c *child, gen int) {
	u.announceSuccessor(c, gen)
	if u.parent != nil {
		u.parent.upgraded() // a parked parent's window ends: this generation has one of its own
	}
	var pk *park
	if u.opts.RollbackWindow > 0 {
		pk = u.park(c, gen) // copies of the sockets, before the drain closes them
	}
	u.mu.Lock()
	u.phase = handedOver
	u.successor = c // its channel stays open until this process exits: the child learns of it
	for _, h := range u.files {
		if ul, ok := h.conn.(*net.UnixListener); ok {
			ul.SetUnlinkOnClose(false) // the path is the new generation's now
		}
	}
	u.mu.Unlock()
	u.closeControl()
	go u.exit() // the BeforeDrain hooks run now; Upgrade returns its verdict at once
	if pk != nil {
		go u.watchWindow(pk)
	}
}

// restorePIDFile repairs the pidfile after a failed upgrade. A handoff
// child writes it at go, and may still be killed after that (its "live"
// lost the race with the timeout or Stop), and its own stop may have
// removed the file again. While this process serves, the file must name
// it; once it is stopping, it must name nobody who is gone.
func (u *Upgrader) restorePIDFile(childPID int) {
	path := u.opts.PIDFile
	u.mu.Lock()
	parked := u.phase == handedOver // a rollback that failed: this one does not serve
	u.mu.Unlock()
	if path == "" || parked {
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
