//go:build unix

package readiness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Notifier sends state changes to a service manager with the sd_notify
// protocol: one datagram of newline-separated KEY=VALUE lines per call,
// on the unix datagram socket systemd names in NOTIFY_SOCKET. A nil
// *Notifier sends nothing, so callers need not check whether there is a
// service manager. A Notifier is safe for concurrent use.
type Notifier struct {
	addr *net.UnixAddr
}

// NewNotifier returns a Notifier for socket, the value of NOTIFY_SOCKET: an
// absolute path, or on Linux "@name" for an abstract socket. It returns
// nil and no error for an empty socket: there is no service manager to
// tell. Other forms (systemd's "vsock:") give [ErrNoNotifySocket].
func NewNotifier(socket string) (*Notifier, error) {
	switch {
	case socket == "":
		return nil, nil
	case strings.HasPrefix(socket, "/"):
	case strings.HasPrefix(socket, "@") && len(socket) > 1 && runtime.GOOS == "linux":
	default:
		return nil, fmt.Errorf("%w %q: want an absolute path or, on Linux, @abstract", ErrNoNotifySocket, socket)
	}
	return &Notifier{addr: &net.UnixAddr{Name: socket, Net: "unixgram"}}, nil
}

// Notify sends state, newline-separated KEY=VALUE lines such as
// "READY=1\nSTATUS=serving", as one datagram. It returns once the kernel
// has queued the datagram for the service manager, which handles
// datagrams in the order they arrive, or after a second if the manager's
// queue stays full.
func (n *Notifier) Notify(state string) error {
	if n == nil {
		return nil
	}
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("readiness: notify %s: %w", n.addr.Name, err)
	}
	defer c.Close()
	// A service manager that does not read (systemd re-executing itself,
	// say) must not block the caller for long.
	c.SetWriteDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte(state)); err != nil {
		return fmt.Errorf("readiness: notify %s: %w", n.addr.Name, err)
	}
	return nil
}

// Socket returns the socket n sends to, "" for a nil Notifier.
func (n *Notifier) Socket() string {
	if n == nil {
		return ""
	}
	return n.addr.Name
}

// Watchdog sends WATCHDOG=1 at once and then every half timeout (the
// WatchdogInterval), until ctx ends. A failed send is passed to failed, if
// not nil, and the pings go on. Send from the service's main process only.
func (n *Notifier) Watchdog(ctx context.Context, timeout time.Duration, failed func(error)) {
	ping := func() {
		if err := n.Notify("WATCHDOG=1"); err != nil && failed != nil {
			failed(err)
		}
	}
	ping()
	t := time.NewTicker(timeout / 2)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			ping()
		case <-ctx.Done():
			return
		}
	}
}

// Reloading returns the lines that tell systemd a reload has begun:
// RELOADING=1 with MONOTONIC_USEC, the CLOCK_MONOTONIC time systemd
// requires since version 253 to tell this reload from an earlier one.
func Reloading() string {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return "RELOADING=1" // cannot fail with a valid clock
	}
	usec := ts.Nano() / 1000
	return "RELOADING=1\nMONOTONIC_USEC=" + strconv.FormatInt(usec, 10)
}

// NotifyReceiver is the service manager's side of the protocol: a unix
// datagram socket that programs it starts send their state to (their
// NOTIFY_SOCKET). On Linux it learns each sender's PID from the kernel,
// as systemd does.
type NotifyReceiver struct {
	c    *net.UnixConn
	path string
}

// ListenNotify creates a receiver bound to path, which must not exist.
// Put it in a directory only the intended senders can reach: on platforms
// other than Linux, nothing tells who sent a datagram.
func ListenNotify(path string) (*NotifyReceiver, error) {
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("readiness: notify socket: %w", err)
	}
	if err := passCred(c); err != nil {
		c.Close()
		return nil, fmt.Errorf("readiness: notify socket: %w", err)
	}
	return &NotifyReceiver{c: c, path: path}, nil
}

// Path returns the socket's path, the NOTIFY_SOCKET to give senders.
func (r *NotifyReceiver) Path() string { return r.path }

// Receive blocks until a valid datagram arrives, ctx ends (ctx.Err()) or
// the receiver is closed ([net.ErrClosed]). Datagrams that are oversized,
// hold a NUL byte or carry no assignment are skipped; descriptors sent
// along are closed.
func (r *NotifyReceiver) Receive(ctx context.Context) (Notification, error) {
	r.c.SetReadDeadline(time.Time{})
	stop := context.AfterFunc(ctx, func() { r.c.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	buf := make([]byte, MaxNotify+1)
	oob := make([]byte, oobSize)
	for {
		n, oobn, flags, _, err := r.c.ReadMsgUnix(buf, oob)
		if err != nil {
			if ctx.Err() != nil {
				return Notification{}, ctx.Err()
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				// Set by an earlier call's context as that call returned.
				r.c.SetReadDeadline(time.Time{})
				continue
			}
			return Notification{}, err
		}
		pid := sender(oob[:oobn])
		if flags&syscall.MSG_TRUNC != 0 {
			continue
		}
		lines, ok := ParseNotification(buf[:n])
		if !ok || len(lines) == 0 {
			continue
		}
		return Notification{PID: pid, Lines: lines}, nil
	}
}

// Close closes the socket and removes its path.
func (r *NotifyReceiver) Close() error {
	err := r.c.Close()
	os.Remove(r.path)
	return err
}
