//go:build !unix

package readiness

import (
	"context"
	"time"
)

// Notifier is a service manager client; on this platform there is no
// service manager to tell, and a nil *Notifier sends nothing.
type Notifier struct{}

// NewNotifier returns nil for an empty socket and ErrNotSupported
// otherwise.
func NewNotifier(socket string) (*Notifier, error) {
	if socket == "" {
		return nil, nil
	}
	return nil, ErrNotSupported
}

// Ready does nothing for a nil Notifier, the only kind there is here.
func (n *Notifier) Ready(status string) error { return nil }

// Reloading does nothing for a nil Notifier.
func (n *Notifier) Reloading(status string) error { return nil }

// Stopping does nothing for a nil Notifier.
func (n *Notifier) Stopping(status string) error { return nil }

// Status does nothing for a nil Notifier.
func (n *Notifier) Status(status string) error { return nil }

// MainPID does nothing for a nil Notifier.
func (n *Notifier) MainPID(pid int, status string) error { return nil }

// Notify does nothing for a nil Notifier.
func (n *Notifier) Notify(lines ...string) error { return nil }

// Watchdog returns at once for a nil Notifier.
func (n *Notifier) Watchdog(ctx context.Context, timeout time.Duration, failed func(error)) {}

// Receiver is not supported on this platform.
type Receiver struct{}

// Listen returns ErrNotSupported on this platform.
func Listen(path string) (*Receiver, error) { return nil, ErrNotSupported }

// Receive returns ErrNotSupported on this platform.
func (r *Receiver) Receive(ctx context.Context) (Notification, error) {
	return Notification{}, ErrNotSupported
}

// Close does nothing on this platform.
func (r *Receiver) Close() error { return nil }
