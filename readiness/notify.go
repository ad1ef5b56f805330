package readiness

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// MaxNotify bounds a notify datagram a [NotifyReceiver] accepts; longer
// ones are dropped whole (systemd's own limit is larger, but nothing a
// starter reads needs more).
const MaxNotify = 4096

// MaxStatus bounds the text of a STATUS= line made by [Status], in bytes.
const MaxStatus = 400

// ErrNoNotifySocket is returned by [NewNotifier] for a NOTIFY_SOCKET this
// package cannot send to (only unix socket paths and, on Linux, abstract
// "@name" sockets are supported).
var ErrNoNotifySocket = errors.New("readiness: unsupported NOTIFY_SOCKET")

// Notification is one sd_notify datagram, as a [NotifyReceiver] got it.
type Notification struct {
	// PID is the sender's process ID as the kernel reported it (Linux
	// SCM_CREDENTIALS), or 0 where the platform does not say.
	PID int

	// Lines are the datagram's KEY=VALUE assignments in order. Empty
	// lines and lines without '=' are left out, as systemd ignores them.
	Lines []string
}

// Value returns the value of the last assignment to key.
func (n Notification) Value(key string) (string, bool) {
	for i := len(n.Lines) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(n.Lines[i], key+"="); ok {
			return v, true
		}
	}
	return "", false
}

// ParseNotification splits a notify datagram into its assignments. A
// datagram holding a NUL byte, or longer than MaxNotify, is invalid whole
// (ok false), as systemd drops it; otherwise parsing never fails: the
// datagram is outside input and the worst it can do is not be understood.
func ParseNotification(b []byte) (lines []string, ok bool) {
	if len(b) > MaxNotify || bytes.IndexByte(b, 0) >= 0 {
		return nil, false
	}
	for line := range bytes.SplitSeq(b, []byte{'\n'}) {
		if i := bytes.IndexByte(line, '='); i > 0 {
			lines = append(lines, string(line))
		}
	}
	return lines, true
}

// Printable returns s with control and non-ASCII bytes replaced by '?' and
// cut to max bytes, fit for a log line or a STATUS= value.
func Printable(s string, max int) string {
	if len(s) > max {
		s = s[:max]
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f {
			c = '?'
		}
		b.WriteByte(c)
	}
	return b.String()
}

// Status returns a STATUS= line saying text, made printable (see
// [Printable]) and cut to MaxStatus bytes, so that it stays one line.
func Status(text string) string {
	return "STATUS=" + Printable(text, MaxStatus)
}

// WatchdogInterval reads systemd's watchdog settings (the values of
// WATCHDOG_USEC and WATCHDOG_PID) for the process self. It returns the
// timeout systemd enforces, or 0 if there is no watchdog for this process:
// usec empty, or pid naming another process. Send WATCHDOG=1 at least
// every half of it.
func WatchdogInterval(usec, pid string, self int) (time.Duration, error) {
	if usec == "" {
		return 0, nil
	}
	if pid != "" {
		p, err := strconv.Atoi(pid)
		if err != nil || p <= 0 {
			return 0, fmt.Errorf("readiness: WATCHDOG_PID=%q is not a PID", pid)
		}
		if p != self {
			return 0, nil
		}
	}
	n, err := strconv.ParseUint(usec, 10, 63)
	if err != nil || n == 0 || n > uint64(time.Duration(1<<63-1)/time.Microsecond) {
		return 0, fmt.Errorf("readiness: WATCHDOG_USEC=%q is not a positive number of microseconds", usec)
	}
	return time.Duration(n) * time.Microsecond, nil
}
