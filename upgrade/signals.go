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
// and SIGINT), logging each outcome. Upgrade signals that arrive while an
// upgrade runs are coalesced: at most one more upgrade is queued. The
// returned function stops the handling; it is safe to call more than once.
func (u *Upgrader) HandleSignals() (stop func()) {
	up := u.opts.UpgradeSignals
	if up == nil {
		up = defaultUpgradeSignals
	}
	down := u.opts.StopSignals
	if down == nil {
		down = defaultStopSignals
	}
	sigs := make(chan os.Signal, 1) // buffered by one: a signal storm queues one upgrade
	signal.Notify(sigs, append(slices.Clone(up), down...)...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
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
	var once sync.Once
	return func() {
		once.Do(func() {
			signal.Stop(sigs)
			cancel()
			<-done
		})
	}
}
