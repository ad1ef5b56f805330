package readiness

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// maxDatagram bounds a datagram a Receiver accepts; longer ones are
// dropped whole (systemd's own limit is larger, but nothing a supervisor
// reads needs more).
const maxDatagram = 4096

// maxStatus bounds the text of a STATUS= line, in bytes.
const maxStatus = 400

// ErrNotSupported is returned on platforms without unix datagram sockets,
// and by NewNotifier for a NOTIFY_SOCKET of a kind this package cannot
// send to (systemd's "vsock:", or an abstract "@name" outside Linux).
var ErrNotSupported = errors.New("readiness: not supported on this platform")

// Notification is one sd_notify datagram, as a [Receiver] got it.
type Notification struct {
	// PID is the sender's process ID as the kernel reported it (Linux's
	// SCM_CREDENTIALS), or 0 where the platform does not tell.
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

// parseDatagram splits a notify datagram into its assignments. A datagram
// holding a NUL byte, or longer than maxDatagram, is invalid whole (ok
// false), as systemd drops it; otherwise parsing never fails: the datagram
// is outside input and the worst it can do is not be understood.
func parseDatagram(b []byte) (lines []string, ok bool) {
	if len(b) > maxDatagram || bytes.IndexByte(b, 0) >= 0 {
		return nil, false
	}
	for line := range bytes.SplitSeq(b, []byte{'\n'}) {
		if i := bytes.IndexByte(line, '='); i > 0 {
			lines = append(lines, string(line))
		}
	}
	return lines, true
}

// statusLine returns a STATUS= line saying text, with control and
// non-ASCII bytes replaced by '?' and cut to maxStatus bytes, so that it
// stays one line; "" for empty text.
func statusLine(text string) string {
	if text == "" {
		return ""
	}
	if len(text) > maxStatus {
		text = text[:maxStatus]
	}
	b := []byte("STATUS=" + text)
	for i := len("STATUS="); i < len(b); i++ {
		if b[i] < 0x20 || b[i] >= 0x7f {
			b[i] = '?'
		}
	}
	return string(b)
}

// WatchdogTimeout returns the watchdog timeout systemd enforces on this
// process (WATCHDOG_USEC, when WATCHDOG_PID is unset or names this
// process), or 0 if there is none. Send WATCHDOG=1 at least every half of
// it, from the service's main process; [Notifier.Watchdog] does.
func WatchdogTimeout() (time.Duration, error) {
	return watchdogTimeout(os.Getenv("WATCHDOG_USEC"), os.Getenv("WATCHDOG_PID"), os.Getpid())
}

func watchdogTimeout(usec, pid string, self int) (time.Duration, error) {
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
