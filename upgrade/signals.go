package upgrade

import (
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"slices"
)

// HandleSignals upgrades on Options.UpgradeSignals (default SIGHUP and
// SIGUSR2) and stops gracefully on Options.StopSignals (default SIGTERM
// and SIGINT), logging each outcome, for the rest of the process's life.
// A stop signal is acted on at once, even during an upgrade, which it
// cancels; after the first, stop signals get their default action again,
// so that a second one ends the process. Upgrade signals that arrive while
// an upgrade runs are coalesced: at most one more upgrade is queued. Once
// this generation has handed over or is stopping, upgrade signals are
// logged and ignored, so that a deploy script's late SIGHUP (whose default
// action is to terminate) cannot kill a draining process. One that arrives
// before Ready has returned (the pidfile names a new generation a moment
// before) is acted on once it has. Called before Ready, it returns at once
// and the handlers are in place before Ready takes over; called after, they
// are in place when it returns. Calls after the first do nothing.
func (u *Upgrader) HandleSignals() {
	u.signalsOnce.Do(u.handleSignals)
}

func (u *Upgrader) handleSignals() {
	up := u.opts.UpgradeSignals
	if up == nil {
		up = defaultUpgradeSignals
		if u.opts.UpgradeOnSIGUSR1 {
			up = append(slices.Clone(up), sigUSR1...)
		}
	}
	down := u.opts.StopSignals
	if down == nil {
		down = defaultStopSignals
	}
	upSigs, downSigs := make(chan os.Signal, 4), make(chan os.Signal, 1)
	install := func() {
		// Notify with no signals would relay every signal: guard empty lists.
		if len(up) > 0 {
			signal.Notify(upSigs, up...)
		}
		if len(down) > 0 {
			signal.Notify(downSigs, down...)
		}
	}
	// Each signal Notify enables is a round trip to a thread of the
	// runtime's own, which a loaded machine schedules late: measured
	// 0.3–2.9 ms for four signals in a new generation starting under load,
	// of its 1.2–8.3 ms to Serve. Before Ready they are installed beside
	// the program's start, and Ready waits for them.
	u.mu.Lock()
	early := !u.takingOver
	if early {
		u.signalsSet = make(chan struct{})
		go func(set chan struct{}) {
			install()
			close(set)
		}(u.signalsSet)
	}
	u.mu.Unlock()
	if !early {
		install()
	}
	ctx, cancel := u.untilStop()
	// One worker runs upgrades, so that at most one is in flight; the
	// one-slot queue holds at most one more.
	queue := make(chan os.Signal, 1)
	go func() {
		for s := range queue {
			// The pidfile names a new generation a moment before its
			// Ready returns: a deploy's signal sent then waits for it.
			select {
			case <-u.readyC:
			default:
				u.log.Info("upgrade signal before Ready: upgrading once ready", slog.String("signal", s.String()))
				select {
				case <-u.readyC:
				case <-ctx.Done():
					continue
				}
			}
			u.log.Info("upgrading", slog.String("signal", s.String()))
			var ce *ChildError
			switch err := u.Upgrade(ctx); {
			case err == nil, errors.As(err, &ce):
				// Upgrade has logged the outcome, a failure with its reason.
			case errors.Is(err, ErrHandedOver), errors.Is(err, ErrStopped):
				u.log.Info("upgrade signal ignored", slog.String("signal", s.String()), slog.Any("reason", err))
			default:
				u.log.Warn("upgrade signal refused", slog.String("signal", s.String()), slog.Any("reason", err))
			}
		}
	}()
	go func() {
		defer cancel()
		for {
			select {
			case s := <-downSigs:
				// Give the stop signals back to the runtime, so that a
				// second one (an impatient Ctrl-C) ends the process at once.
				signal.Stop(downSigs)
				u.log.Info("stopping gracefully; a second signal ends the process at once", slog.String("signal", s.String()))
				go u.Stop()
			case s := <-upSigs:
				select {
				case queue <- s:
				default:
					u.log.Info("upgrade signal coalesced with the one already queued", slog.String("signal", s.String()))
				}
			}
		}
	}()
}
