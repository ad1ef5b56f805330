package upgrade

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/handoff-go/handoff/readiness"
)

// Variables of systemd's notify protocol.
const (
	envNotifySocket = "NOTIFY_SOCKET"
	envWatchdogUsec = "WATCHDOG_USEC"
	envWatchdogPID  = "WATCHDOG_PID"
)

// notifier tells systemd what this generation does, when NOTIFY_SOCKET is
// set; without it every method does nothing. Its methods are the rows of
// the datagram table in the package documentation. A failure to send is
// logged, never returned: serving matters more than the service manager
// hearing of it.
type notifier struct {
	sd       *readiness.Notifier // nil without a service manager
	socket   string              // NOTIFY_SOCKET, for a handoff child
	watchdog time.Duration       // systemd's watchdog timeout for this process; 0: none
	log      *slog.Logger

	mu         sync.Mutex
	main       bool   // systemd knows this process as the service's main one
	stopPinger func() // stops the watchdog pings and waits for them; nil while none
}

// newNotifier sets up reporting from NOTIFY_SOCKET and the watchdog
// variables. Problems are logged, never fatal: a server must not refuse
// to start because its notifications would not arrive.
func newNotifier(log *slog.Logger) *notifier {
	n := &notifier{log: log}
	socket := os.Getenv(envNotifySocket)
	sd, err := readiness.NewNotifier(socket)
	if err != nil {
		log.Warn("not reporting to the service manager", slog.Any("error", err))
	}
	if sd == nil {
		return n
	}
	n.sd, n.socket = sd, socket
	// A parent drops WATCHDOG_PID from a child's environment: the child
	// is the one to ping once it is the main process.
	if n.watchdog, err = readiness.WatchdogTimeout(); err != nil {
		log.Warn("watchdog disabled", slog.Any("error", err))
	}
	return n
}

// active reports whether there is a service manager to tell.
func (n *notifier) active() bool { return n.sd != nil }

func (n *notifier) sent(err error) {
	if err != nil {
		n.log.Warn("could not notify the service manager", slog.Any("error", err))
	}
}

// started: a first generation is ready.
func (n *notifier) started(gen int) {
	n.sent(n.sd.Ready(serving(gen, os.Getpid())))
}

// upgrading: an upgrade begins.
func (n *notifier) upgrading(gen int) {
	n.sent(n.sd.Reloading(fmt.Sprintf("upgrading: starting generation %d", gen)))
}

// handOver: the new generation child is live. This process stops its
// watchdog pings first (systemd would refuse one after MAINPID), then
// makes the child the main process in the same datagram as READY=1.
func (n *notifier) handOver(child, gen int) {
	n.resign()
	n.sent(n.sd.MainPID(child, fmt.Sprintf("%s (upgraded from pid %d)", serving(gen, child), os.Getpid())))
}

// failed: the upgrade failed; this process keeps serving.
func (n *notifier) failed(err error) {
	n.sent(n.sd.Ready("upgrade failed: " + strings.TrimPrefix(err.Error(), "upgrade: ")))
}

// refused: an upgrade was refused (too many generations draining). It is
// still an answer to a reload systemd asked for.
func (n *notifier) refused(err error) {
	n.sent(n.sd.Reloading(""))
	n.sent(n.sd.Ready("upgrade refused: " + strings.TrimPrefix(err.Error(), "upgrade: ")))
}

// rollingBack: a parked generation rolls back. It is not the main
// process; systemd takes this only with NotifyAccess=all.
func (n *notifier) rollingBack(reason string) {
	n.sent(n.sd.Status("rolling back: " + reason))
}

// rollbackFailed: a parked generation could not start its build again.
func (n *notifier) rollbackFailed(err error, serving bool) {
	msg := "rollback failed: " + strings.TrimPrefix(err.Error(), "upgrade: ")
	if !serving {
		msg += "; nobody serves"
	}
	n.sent(n.sd.Status(msg))
}

// resign: a retired generation is no longer the main process; its
// watchdog pings end.
func (n *notifier) resign() {
	n.mu.Lock()
	stop := n.stopPinger
	n.stopPinger, n.main = nil, false
	n.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// stopping: the live generation stops. Its watchdog pings end too.
func (n *notifier) stopping(gen int) {
	n.mu.Lock()
	main, stop := n.main, n.stopPinger
	n.stopPinger = nil
	n.mu.Unlock()
	if stop != nil {
		stop()
	}
	if main {
		n.sent(n.sd.Stopping(fmt.Sprintf("stopping: draining generation %d, pid %d", gen, os.Getpid())))
	}
}

// announce: a new generation whose parent died before it could make it
// the main process says so itself (accepted with NotifyAccess=all).
func (n *notifier) announce(gen int) {
	n.sent(n.sd.MainPID(os.Getpid(), serving(gen, os.Getpid())+" (announced itself: its parent could not)"))
}

// becomeMain starts what the main process of a service does: watchdog
// pings, the first at once (the previous main process's last one may be
// half an interval old).
func (n *notifier) becomeMain() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.main = true
	if n.sd == nil || n.watchdog <= 0 || n.stopPinger != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.sd.Watchdog(ctx, n.watchdog, func(err error) {
			n.log.Warn("could not ping the systemd watchdog", slog.Any("error", err))
		})
	}()
	n.stopPinger = func() { cancel(); <-done }
}

func serving(gen, pid int) string { return fmt.Sprintf("serving: generation %d, pid %d", gen, pid) }
