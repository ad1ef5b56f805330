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
// even during an upgrade, which it cancels. Upgrade signals that arrive
// while an upgrade runs are coalesced: at most one more upgrade is queued.
// The returned function stops the handling, cancelling an upgrade it
// started and waiting for it; it is safe to call more than once.
func (u *Upgrader) HandleSignals() (stop func()) {
	up := u.opts.UpgradeSignals
	if up == nil {
		up = defaultUpgradeSignals
	}
	down := u.opts.StopSignals
	if down == nil {
		down = defaultStopSignals
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, append(slices.Clone(up), down...)...)
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
				switch err := u.Upgrade(ctx); {
				case err == nil:
				case errors.Is(err, ErrHandedOver), errors.Is(err, ErrStopped):
					u.log.Info("upgrade signal ignored", slog.String("signal", s.String()), slog.Any("reason", err))
				default:
					// Upgrade has logged the failure with its reason.
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
			case s := <-sigs:
				if slices.Contains(down, s) {
					u.log.Info("stopping gracefully", slog.String("signal", s.String()))
					u.Stop()
					continue
				}
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
			signal.Stop(sigs)
			cancel()
			wg.Wait()
		})
	}
}
