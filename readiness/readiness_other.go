//go:build !unix

package readiness

import (
	"context"
	"os"
	"time"
)

// Pair is not supported on this platform.
func Pair() (parent, child *os.File, err error) { return nil, nil, ErrNotSupported }

// Ready is not supported on this platform.
func Ready(f *os.File) error { return ErrNotSupported }

// Fail is not supported on this platform.
func Fail(f *os.File, reason string) error { return ErrNotSupported }

// Wait is not supported on this platform.
func Wait(ctx context.Context, f *os.File) error { return ErrNotSupported }

// WaitClosed is not supported on this platform.
func WaitClosed(ctx context.Context, f *os.File) error { return ErrNotSupported }

// Go is not supported on this platform.
func Go(f *os.File) error { return ErrNotSupported }

// WaitGo is not supported on this platform.
func WaitGo(ctx context.Context, f *os.File) error { return ErrNotSupported }

// Live is not supported on this platform.
func Live(f *os.File) error { return ErrNotSupported }

// WaitLive is not supported on this platform.
func WaitLive(ctx context.Context, f *os.File) error { return ErrNotSupported }

// Notifier is not supported on this platform; a nil *Notifier sends
// nothing.
type Notifier struct{}

// NewNotifier returns nil for an empty socket and ErrNotSupported
// otherwise.
func NewNotifier(socket string) (*Notifier, error) {
	if socket == "" {
		return nil, nil
	}
	return nil, ErrNotSupported
}

// Notify does nothing for a nil Notifier, the only kind there is here.
func (n *Notifier) Notify(state string) error { return nil }

// Socket returns "".
func (n *Notifier) Socket() string { return "" }

// Reloading returns "RELOADING=1".
func Reloading() string { return "RELOADING=1" }

// Main is not supported on this platform.
func Main(f *os.File) error { return ErrNotSupported }

// WaitMain is not supported on this platform.
func WaitMain(ctx context.Context, f *os.File) error { return ErrNotSupported }

// ReadyTableflip is not supported on this platform.
func ReadyTableflip(f *os.File) error { return ErrNotSupported }

// Watchdog does nothing for a nil Notifier, the only kind there is here.
func (n *Notifier) Watchdog(ctx context.Context, timeout time.Duration, failed func(error)) {}
