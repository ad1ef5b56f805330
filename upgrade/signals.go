package upgrade

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"sync"
)

// HandleSignals upgrades on Options.UpgradeSignals (default SIGHUP and
// SIGUSR2) and stops gracefully on Options.StopSignals (default SIGTERM
// and SIGINT), logging each outcome. A stop signal is acted on at once,
// even during an upgrade, which it cancels; after the first, stop signals
// get their default action again, so a second one ends the process. Upgrade signals that arrive
// while an upgrade runs are coalesced: at most one more upgrade is queued.
// The returned function stops the handling, cancelling an upgrade it
// started and waiting for it; it is safe to call more than once.
func (u *Upgrader) HandleSignals() (stop func()) {
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
	// Notify with no signals would relay every signal: guard empty lists.
	upSigs := make(chan os.Signal, 4)
	if len(up) > 0 {
		signal.Notify(upSigs, up...)
	}
	downSigs := make(chan os.Signal, 1)
	if len(down) > 0 {
		signal.Notify(downSigs, down...)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup

	// One worker runs upgrades, so that at most one is in flight; the
	// one-slot queue holds at most one more.
	queue := make(chan os.Signal, 1)
	wg.Add(2)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case s := <-queue:
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
		}
	}()
	go func() {
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case s := <-downSigs:
				// Give the stop signals back to the runtime, so that a
				// second one (an impatient Ctrl-C) ends the process at once.
				signal.Stop(downSigs)
				u.log.Info("stopping gracefully; a second signal ends the process at once", slog.String("signal", s.String()))
				u.Stop()
			case s := <-upSigs:
				select {
				case queue <- s:
				default:
					u.log.Info("upgrade signal coalesced with the one already queued", slog.String("signal", s.String()))
				}
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			signal.Stop(upSigs)
			signal.Stop(downSigs)
			cancel()
			wg.Wait()
		})
	}
}
