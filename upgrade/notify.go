package upgrade

import (
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"github.com/handoff-go/handoff/readiness"
)

// Environment variables of systemd's notify protocol.
const (
	envNotifySocket = "NOTIFY_SOCKET"
	envWatchdogUsec = "WATCHDOG_USEC"
	envWatchdogPID  = "WATCHDOG_PID"
)

// metaNotify in a child's handoff variable: the parent reports to a
// service manager and, after "live", says "main" once it has told the
// manager that the child is the main process.
const metaNotify = "notify"

// initNotify sets up reporting to systemd from NOTIFY_SOCKET and the
// watchdog variables. Problems are logged, never fatal: a server must not
// refuse to start because its notifications would not arrive.
func (u *Upgrader) initNotify() {
	n, err := readiness.NewNotifier(os.Getenv(envNotifySocket))
	if err != nil {
		u.log.Warn("not reporting to the service manager", slog.Any("error", err))
	}
	u.sd = n
	if n == nil {
		return
	}
	// A parent drops WATCHDOG_PID from a child's environment: the child
	// is the one to ping once it is the main process.
	wd, err := readiness.WatchdogInterval(os.Getenv(envWatchdogUsec), os.Getenv(envWatchdogPID), os.Getpid())
	if err != nil {
		u.log.Warn("watchdog disabled", slog.Any("error", err))
	}
	u.watchdog = wd
}

// notify sends state to the service manager if there is one. A failure is
// logged: the service manager may be gone or restarting, and serving
// matters more.
func (u *Upgrader) notify(state ...string) {
	if u.sd == nil {
		return
	}
	if err := u.sd.Notify(strings.Join(state, "\n")); err != nil {
		u.log.Warn("could not notify the service manager", slog.Any("error", err))
	}
}

// status is a STATUS= line.
func status(format string, args ...any) string {
	return readiness.Status(fmt.Sprintf(format, args...))
}

// becomeMain starts what the main process of a service does: watchdog
// pings. self says this process must announce itself (its parent is gone
// without having done it).
func (u *Upgrader) becomeMain(self bool) {
	if self {
		u.notify("MAINPID="+strconv.Itoa(os.Getpid()), "READY=1",
			status("serving: generation %d, pid %d (its parent died during the upgrade)", u.generation, os.Getpid()))
	}
	if u.watchdog <= 0 {
		return
	}
	// Pinged at once: the previous main process's last ping may be half
	// an interval old. Stopped on hand-over and by Stop.
	// wdCancel waits for the pinger to return, so that no ping of this
	// process can follow the MAINPID it sends at hand-over.
	ctx, cancel := u.untilStop()
	done := make(chan struct{})
	u.wdCancel = func() { cancel(); <-done }
	go func() {
		defer close(done)
		u.sd.Watchdog(ctx, u.watchdog, func(err error) {
			u.log.Warn("could not ping the systemd watchdog", slog.Any("error", err))
		})
	}()
}
