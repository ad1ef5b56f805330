//go:build unix

package upgrade

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/handoff-go/handoff/fdpass"
	"github.com/handoff-go/handoff/internal/tail"
	"github.com/handoff-go/handoff/readiness"
)

// shimPath runs shimScript. Go cannot set a variable between fork and exec,
// and a systemd-style program checks LISTEN_PID against its own PID: the
// shell learns its PID ($$), exports it, and execs the program, which
// keeps that PID. Arguments pass through "$0" "$@" unchanged, whatever
// they hold, and any POSIX sh leaves inherited descriptors above 2 alone
// across exec. The shell does touch the environment: it sets PWD (bash
// also SHLVL), and dash drops variables whose names are not shell
// identifiers (such as "a.b"); the child's argv[0] is its path.
const (
	shimPath   = "/bin/sh"
	shimScript = `LISTEN_PID=$$; export LISTEN_PID; exec "$0" "$@"`
)

// startForeign starts a next generation that is not a handoff program
// (Options.ForeignChild): its sockets as fds 3.. described by LISTEN_FDS,
// LISTEN_FDNAMES and a LISTEN_PID equal to its own PID, no handoff control
// files, its stderr straight to ours, and a private NOTIFY_SOCKET on which
// its sd_notify READY=1 counts as "ready" (see relay).
func (u *Upgrader) startForeign(files []*handed, stdio []uintptr) (c *child, err error) {
	fail := func(err error) (*child, error) {
		return nil, &ChildError{Stage: StageStart, ExitCode: -1, Err: err}
	}
	var h fdpass.Handover
	fds, err := dupFiles(files, &h)
	defer func() {
		for _, fd := range fds {
			syscall.Close(fd)
		}
	}()
	if err != nil {
		return fail(err)
	}
	env, err := h.Environ()
	if err != nil {
		return fail(err)
	}
	dir, err := os.MkdirTemp("", "handoff-notify-") // mode 0700: only this user reaches the socket
	if err != nil {
		return fail(fmt.Errorf("directory for the child's notify socket: %w", err))
	}
	rcv, err := readiness.ListenNotify(filepath.Join(dir, "notify"))
	if err != nil {
		os.RemoveAll(dir)
		return fail(err)
	}
	ctl, agent, err := readiness.Pair()
	if err != nil {
		rcv.Close()
		os.RemoveAll(dir)
		return fail(err)
	}
	attr := &syscall.ProcAttr{Dir: u.dir, Files: stdio}
	for _, fd := range fds {
		attr.Files = append(attr.Files, uintptr(fd))
	}
	// The child's notifications reach only the relay, which ends at
	// hand-over: it cannot ping systemd's watchdog, so it is not told of one.
	if u.watchdog > 0 {
		u.log.Warn("a foreign child cannot ping the systemd watchdog after the hand-over; set WatchdogSec only for handoff programs")
	}
	for _, kv := range u.childEnv() {
		if !strings.HasPrefix(kv, envNotifySocket+"=") && !strings.HasPrefix(kv, envWatchdogUsec+"=") {
			attr.Env = append(attr.Env, kv)
		}
	}
	for _, kv := range env {
		if !strings.HasPrefix(kv, fdpass.EnvHandoff+"=") {
			attr.Env = append(attr.Env, kv)
		}
	}
	attr.Env = append(attr.Env, envNotifySocket+"="+rcv.Path())
	argv := append([]string{shimPath, "-c", shimScript, u.path}, u.args[1:]...)
	pid, _, err := syscall.StartProcess(shimPath, argv, attr)
	if err != nil {
		ctl.Close()
		agent.Close()
		rcv.Close()
		os.RemoveAll(dir)
		return fail(fmt.Errorf("start %s through %s: %w", u.path, shimPath, err))
	}
	c = watchChild(pid, ctl, tail.New(0)) // its stderr is ours: nothing to quote
	go func() {
		defer agent.Close()
		u.relay(c, agent, rcv, dir)
	}()
	return c, nil
}

// relay speaks handoff's readiness protocol on agent for a foreign child,
// from what the child sends with sd_notify: its READY=1 is "ready"; on
// "go" the relay writes the pidfile with the child's PID and says "live".
// It ends when the child has taken over, has exited, or Stop is called;
// the child's later notifications then find no socket (a foreign child
// does not report to systemd itself: the parent sends MAINPID for it).
func (u *Upgrader) relay(c *child, agent *os.File, rcv *readiness.NotifyReceiver, dir string) {
	closeSocket := func() { rcv.Close(); os.RemoveAll(dir) }
	defer closeSocket() // twice is harmless
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-c.exited:
			// What it sent before it exited is queued already: give the
			// loop a moment to read it (its last STATUS= says why).
			select {
			case <-time.After(exitedGrace / 2):
			case <-ctx.Done():
			}
		case <-u.stopC:
		case <-ctx.Done():
		}
		cancel()
	}()
	ready := u.awaitForeign(ctx, c, rcv)
	close(c.stderrDone)
	closeSocket() // now, not when this process exits: nothing is left behind in /tmp
	if !ready {
		return
	}
	if readiness.Ready(agent) != nil || readiness.WaitGo(ctx, agent) != nil {
		return
	}
	if err := u.writePIDFile(c.pid); err != nil {
		readiness.Fail(agent, err.Error())
		return
	}
	if readiness.Live(agent) != nil {
		return
	}
	if u.sd != nil {
		readiness.WaitMain(ctx, agent)
	}
}

// awaitForeign reads a foreign child's notifications until it says
// READY=1 (true) or ctx ends, and keeps its last STATUS= line.
func (u *Upgrader) awaitForeign(ctx context.Context, c *child, rcv *readiness.NotifyReceiver) bool {
	log := u.log.With(slog.Int("child_pid", c.pid))
	for {
		n, err := rcv.Receive(ctx)
		if err != nil {
			return false
		}
		if readiness.KnowsSender && n.PID != c.pid {
			log.Warn("ignored a notify message from another process: the new generation must send READY=1 itself (exec, do not fork)",
				slog.Int("sender", n.PID))
			continue
		}
		if st, ok := n.Value("STATUS"); ok {
			st = readiness.Printable(st, readiness.MaxStatus)
			c.setStatus(st)
			log.Info("new generation status", slog.String("status", st))
		}
		if v, _ := n.Value("READY"); v == "1" {
			return true
		}
	}
}

func (c *child) setStatus(s string) {
	c.mu.Lock()
	c.status = s
	c.mu.Unlock()
}
