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

// Notifier tells a service manager what the program does, with systemd's
// sd_notify protocol: one datagram of newline-separated KEY=VALUE lines per
// call, on the unix datagram socket systemd names in NOTIFY_SOCKET, with no
// cgo and no dependency. A nil *Notifier sends nothing and returns nil, so
// callers need not check whether there is a service manager. A Notifier is
// safe for concurrent use.
type Notifier struct {
	addr *net.UnixAddr
}

// NewNotifier returns a Notifier for socket, the value of NOTIFY_SOCKET:
// an absolute path or, on Linux, "@name" for an abstract socket. For an
// empty socket it returns nil and no error: there is no service manager to
// tell. Other forms (systemd's "vsock:") give [ErrNotSupported].
func NewNotifier(socket string) (*Notifier, error) {
	switch {
	case socket == "":
		return nil, nil
	case strings.HasPrefix(socket, "/"):
	case strings.HasPrefix(socket, "@") && len(socket) > 1 && runtime.GOOS == "linux":
	default:
		return nil, fmt.Errorf("%w: NOTIFY_SOCKET=%q: only an absolute path or, on Linux, @abstract", ErrNotSupported, socket)
	}
	return &Notifier{addr: &net.UnixAddr{Name: socket, Net: "unixgram"}}, nil
}

// Ready says the service is ready (READY=1), at start or at the end of a
// reload, with status as its STATUS= if not empty.
func (n *Notifier) Ready(status string) error {
	return n.Notify("READY=1", statusLine(status))
}

// Reloading says a reload has begun: RELOADING=1 with MONOTONIC_USEC, the
// CLOCK_MONOTONIC time that systemd (since version 253) uses to tell this
// reload from an earlier one, and status if not empty. End the reload with
// Ready, or MainPID if another process takes over.
func (n *Notifier) Reloading(status string) error {
	return n.Notify("RELOADING=1", "MONOTONIC_USEC="+strconv.FormatInt(monotonicUsec(), 10), statusLine(status))
}

// Stopping says the service is stopping (STOPPING=1), with status if not
// empty.
func (n *Notifier) Stopping(status string) error {
	return n.Notify("STOPPING=1", statusLine(status))
}

// Status sets the service's status text (STATUS=), as systemctl status
// shows it; control characters become '?', and it is cut to 400 bytes.
func (n *Notifier) Status(status string) error {
	if status == "" {
		return n.Notify("STATUS=")
	}
	return n.Notify(statusLine(status))
}

// MainPID hands the service over to process pid, which is ready to serve:
// MAINPID=pid, READY=1 and status if not empty, in one datagram, as
// systemd accepts them from the current main process only and from then
// on listens to pid instead (under its default NotifyAccess=main).
func (n *Notifier) MainPID(pid int, status string) error {
	return n.Notify("MAINPID="+strconv.Itoa(pid), "READY=1", statusLine(status))
}

// Notify sends lines, KEY=VALUE assignments such as "READY=1" or
// "EXTEND_TIMEOUT_USEC=5000000", as one datagram; empty lines are left
// out. It returns once the kernel has queued the datagram for the service
// manager, which handles datagrams in the order they arrive, or after a
// second if the manager's queue stays full.
func (n *Notifier) Notify(lines ...string) error {
	if n == nil {
		return nil
	}
	var b strings.Builder
	for _, l := range lines {
		if l == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(l)
	}
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("readiness: notify %s: %w", n.addr.Name, err)
	}
	defer c.Close()
	// A service manager that does not read (systemd re-executing itself,
	// say) must not block the caller for long.
	c.SetWriteDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte(b.String())); err != nil {
		return fmt.Errorf("readiness: notify %s: %w", n.addr.Name, err)
	}
	return nil
}

// Watchdog sends WATCHDOG=1 at once and then every half timeout (see
// [WatchdogTimeout]) until ctx ends. A failed ping is passed to failed,
// if not nil, and the pings go on. With a timeout of 0 or less it returns
// at once. Ping from the service's main process only.
func (n *Notifier) Watchdog(ctx context.Context, timeout time.Duration, failed func(error)) {
	if n == nil || timeout <= 0 {
		return
	}
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

func monotonicUsec() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0 // cannot fail with a valid clock
	}
	return ts.Nano() / 1000
}

// Receiver is the service manager's side of the protocol: a unix datagram
// socket that the programs a supervisor (or a test) starts send their
// state to, as their NOTIFY_SOCKET. On Linux it learns each sender's PID
// from the kernel, as systemd does. It is safe for concurrent use.
type Receiver struct {
	c    *net.UnixConn
	path string
}

// Listen creates a Receiver bound to path, which must not exist. Put it
// in a directory only the intended senders can reach: outside Linux,
// nothing tells who sent a datagram.
func Listen(path string) (*Receiver, error) {
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("readiness: notify socket: %w", err)
	}
	if err := passCred(c); err != nil {
		c.Close()
		os.Remove(path)
		return nil, fmt.Errorf("readiness: notify socket: %w", err)
	}
	return &Receiver{c: c, path: path}, nil
}

// Receive blocks until a valid datagram arrives, ctx ends (ctx.Err()) or
// the receiver is closed ([net.ErrClosed]). Datagrams longer than 4 KiB,
// holding a NUL byte or carrying no assignment are skipped; descriptors
// sent along are closed.
func (r *Receiver) Receive(ctx context.Context) (Notification, error) {
	r.c.SetReadDeadline(time.Time{})
	stop := context.AfterFunc(ctx, func() { r.c.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	buf := make([]byte, maxDatagram+1)
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
		lines, ok := parseDatagram(buf[:n])
		if !ok || len(lines) == 0 {
			continue
		}
		return Notification{PID: pid, Lines: lines}, nil
	}
}

// Close closes the socket and removes its path.
func (r *Receiver) Close() error {
	err := r.c.Close()
	os.Remove(r.path)
	return err
}
