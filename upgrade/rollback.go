package upgrade

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/handoff-go/handoff/internal/fds"
	"github.com/handoff-go/handoff/internal/starter"
	"github.com/handoff-go/handoff/internal/wire"
)

// A rollback window (Options.RollbackWindow), from the side of the
// generation that handed over: it drains as it would, and then, instead
// of exiting, stays parked with copies of the sockets until the window
// has passed. If the new generation exits, fails the health check or asks
// (Upgrader.Rollback, `handoff rollback`) meanwhile, the parked generation
// starts its own build again — the very binary it runs, from
// /proc/self/exe on Linux — with those sockets, and hands over to it as in
// an upgrade; a new generation still alive is told to retire and drains.
//
// The parked process cannot serve again itself: its Exit has closed, its
// hooks have run and its servers have shut down, promises made to the
// application that cannot be taken back. A fresh process of the same
// build can serve, within milliseconds; the accept queues never close
// meanwhile, so what arrives waits in them.

// ErrNoRollback is returned by [Upgrader.Rollback] when no previous
// generation is parked to take back over: there was no window
// (Options.RollbackWindow in the previous generation), it has passed, or
// the previous generation is gone.
var ErrNoRollback = errors.New("upgrade: no previous generation to roll back to")

// healthEvery is how often Options.HealthCheck runs in a window, and
// healthTimeout how long one call may take.
const (
	healthEvery   = time.Second
	healthTimeout = 2 * time.Second
)

// park is a generation that handed over with a rollback window.
type park struct {
	succ  *child
	gen   int       // the successor's generation
	files []*handed // copies of the sockets, for the build started again
	hold  *Hold     // keeps Serve in main from returning
	until time.Time
}

// park keeps copies of the sockets for a rollback; nil, logged, if it
// cannot.
func (u *Upgrader) park(c *child, gen int) *park {
	u.mu.Lock()
	defer u.mu.Unlock()
	files := make([]*handed, 0, len(u.files))
	for _, h := range u.files {
		fd, err := fds.Dup(h.conn)
		if err != nil {
			for _, f := range files {
				f.conn.(*os.File).Close()
			}
			u.log.Error("no rollback window: could not keep a copy of a socket", slog.String("name", h.name), slog.Any("error", err))
			return nil
		}
		files = append(files, &handed{name: h.name, conn: os.NewFile(uintptr(fd), h.name)})
	}
	pk := &park{succ: c, gen: gen, files: files, hold: &Hold{d: &u.drain}, until: time.Now().Add(u.opts.RollbackWindow)}
	u.drain.enter()
	u.parked = pk
	return pk
}

// unpark lets go of the sockets and the hold: the process exits once the
// rest has drained.
func (u *Upgrader) unpark(pk *park) {
	u.mu.Lock()
	u.parked = nil
	u.mu.Unlock()
	for _, f := range pk.files {
		f.conn.(*os.File).Close()
	}
	pk.hold.Done()
}

// watchWindow watches the new generation through the window, and rolls
// back or lets go.
func (u *Upgrader) watchWindow(pk *park) {
	c := pk.succ
	log := u.log.With(slog.Int("child_pid", c.pid))
	log.Info("rollback window: this generation stays parked", slog.Duration("window", u.opts.RollbackWindow))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	msgs := make(chan wire.After)
	go func() {
		for {
			m, err := c.lines.Next(ctx)
			var me *wire.MessageError
			switch {
			case errors.As(err, &me):
				continue // not ours to understand
			case err != nil:
				return // it exited: c.exited says so
			}
			select {
			case msgs <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	handedAt := time.Now()
	t := time.NewTimer(time.Until(pk.until))
	defer t.Stop()
	var tick <-chan time.Time
	if u.opts.HealthCheck != nil {
		tk := time.NewTicker(healthEvery)
		defer tk.Stop()
		tick = tk.C
	}
	for {
		select {
		case <-t.C:
			log.Info("rollback window passed: the new generation is healthy; this one exits")
			u.unpark(pk)
			return
		case <-c.exited:
			u.rollback(pk, msgs, fmt.Sprintf("the new generation (PID %d) exited %s %v after the hand-over",
				c.pid, starter.How(c.state()), time.Since(handedAt).Round(time.Millisecond)))
			return
		case <-tick:
			hctx, hcancel := context.WithTimeout(ctx, healthTimeout)
			err := u.opts.HealthCheck(hctx)
			hcancel()
			if err != nil && closed(c.exited) {
				continue // the exit is the reason
			}
			if err != nil {
				u.rollback(pk, msgs, fmt.Sprintf("the new generation (PID %d) failed its health check: %v", c.pid, err))
				return
			}
		case m := <-msgs:
			switch m.Kind {
			case "upgraded":
				log.Info("rollback window ends: the new generation upgraded to one of its own; this one exits")
				u.unpark(pk)
				return
			case "rollback":
				u.rollback(pk, msgs, fmt.Sprintf("the new generation (PID %d) asked: %s", c.pid, m.Reason))
				return
			}
		case <-u.stopC:
			log.Info("rollback window ends: this generation was stopped")
			u.unpark(pk)
			return
		}
	}
}

// rollback starts this build again with the parked sockets and hands over
// to it, then retires the new generation if it is still alive. If this
// build does not start, a new generation still alive serves on; one that
// is gone leaves nobody to serve, said loudly.
func (u *Upgrader) rollback(pk *park, msgs <-chan wire.After, reason string) {
	c := pk.succ
	alive := !closed(c.exited)
	u.log.Error("rolling back: "+reason, slog.Int("child_pid", c.pid))
	u.sd.rollingBack(reason)
	started := time.Now()
	var r *child
	var err error
	for attempt := 1; ; attempt++ {
		if r, err = u.restart(pk, reason); err == nil || alive || attempt == 3 {
			break
		}
		u.log.Error("rollback: this build did not start again; trying once more", slog.Any("error", err))
	}
	if err != nil {
		if alive {
			u.log.Error("rollback failed: this build did not start again; the new generation serves on", slog.Any("error", err))
			u.sd.rollbackFailed(err, true)
		} else {
			u.log.Error("rollback failed: this build did not start again and the new generation is gone: nobody serves; restart the service", slog.Any("error", err))
			u.sd.rollbackFailed(err, false)
		}
		u.unpark(pk)
		return
	}
	u.announceSuccessor(r, pk.gen+1)
	u.mu.Lock()
	u.successor = r
	u.mu.Unlock()
	u.log.Warn("rolled back: this build serves again", slog.Int("pid", r.pid), slog.Int("generation", pk.gen+1),
		slog.String("reason", reason), slog.Duration("took", time.Since(started)))
	if alive {
		u.retire(c, msgs)
	}
	c.ctl.Close()
	if c.pass != nil {
		c.pass.close()
	}
	u.unpark(pk)
}

// restart starts this very build as the generation after pk's, with the
// parked sockets, and waits until it is live.
func (u *Upgrader) restart(pk *park, reason string) (*child, error) {
	prog, path, err := openSelf()
	if err != nil {
		return nil, err
	}
	defer prog.Close()
	sections, err := u.carry()
	if err != nil {
		return nil, err
	}
	c, err := u.startHandoff(launch{
		prog:     prog,
		path:     path,
		args:     os.Args,
		env:      u.childEnv(), // this generation's settings, not the EnvFile of the deploy that failed
		gen:      pk.gen + 1,
		sections: sections,
		meta:     map[string]string{wire.MetaRolledBack: wire.EscapeMeta(reason)},
	}, pk.files, u.aliveElders())
	if err != nil {
		return nil, err
	}
	if err := u.await(context.Background(), c); err != nil {
		return nil, err
	}
	return c, nil
}

// openSelf opens the program this process runs: on Linux the running
// image itself, whatever has been installed at its path since.
func openSelf() (*os.File, string, error) {
	path, err := os.Executable()
	if err != nil {
		return nil, "", fmt.Errorf("find this program: %w", err)
	}
	open := path
	if runtime.GOOS == "linux" {
		open = "/proc/self/exe"
	}
	f, err := os.Open(open)
	if err != nil {
		return nil, "", fmt.Errorf("open this program: %w", err)
	}
	return f, path, nil
}

// retire tells a new generation that is alive to drain, as one that
// handed over does; a build that does not understand (it says nothing) is
// sent SIGTERM. It is killed if it outlives its drain.
func (u *Upgrader) retire(c *child, msgs <-chan wire.After) {
	acked := false
	if wire.Retire(c.ctl) == nil {
		t := time.NewTimer(time.Second)
	wait:
		for {
			select {
			case m := <-msgs:
				if m.Kind == "retiring" {
					acked = true
					break wait
				}
			case <-c.exited:
				break wait
			case <-t.C:
				break wait
			}
		}
		t.Stop()
	}
	if !acked {
		// A handoff build older than protocol 4 stops on SIGTERM as the
		// last generation would, and removes the paths of the unix
		// sockets the rolled-back build now serves: such a build is
		// killed instead. A foreign child removes nothing.
		sig := os.Signal(syscall.SIGTERM)
		if !u.opts.ForeignChild && u.hasPaths() {
			sig = os.Kill
			u.log.Warn("the retired generation did not answer (an older build?): killing it, as a stop would remove the unix socket paths", slog.Int("pid", c.pid))
		}
		c.signal(sig)
	}
	select {
	case <-c.exited:
	case <-time.After(u.opts.DrainTimeout + u.opts.StopGrace + time.Second):
		u.log.Warn("the retired generation outlived its drain; killing it", slog.Int("pid", c.pid))
		c.signal(os.Kill)
		<-c.exited
	}
}

// hasPaths reports whether this generation serves unix sockets bound to
// a path, or a control socket.
func (u *Upgrader) hasPaths() bool {
	if u.opts.ControlSocket != "" {
		return true
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, h := range u.files {
		switch c := h.conn.(type) {
		case *net.UnixListener:
			if unixPath(c.Addr()) != "" {
				return true
			}
		case *net.UnixConn:
			if unixPath(c.LocalAddr()) != "" {
				return true
			}
		}
	}
	return false
}

// unixPath returns the file system path a unix socket is bound to; ""
// for another address, an unbound or an abstract one.
func unixPath(a net.Addr) string {
	if ua, ok := a.(*net.UnixAddr); ok && ua.Name != "" && ua.Name[0] != '@' {
		return ua.Name
	}
	return ""
}

// announceSuccessor tells the service manager and the child that c, of
// generation gen, is the main process now, and lets go of what only its
// start needed.
func (u *Upgrader) announceSuccessor(c *child, gen int) {
	if u.sd.active() {
		u.sd.handOver(c.pid, gen)
		if err := wire.Main(c.ctl); err != nil {
			u.log.Warn("could not tell the new generation it is the main process", slog.Any("error", err))
		}
	}
	c.release()
}

// awaitRetire, in a new generation, drains it when the parked parent
// rolled back.
func (u *Upgrader) awaitRetire() {
	select {
	case <-u.parent.retired():
	case <-u.stopC:
		return
	}
	u.log.Warn("rolled back: the previous build serves again; this generation drains")
	u.parent.retiring()
	u.mu.Lock()
	u.retired = true
	for _, h := range u.files {
		if ul, ok := h.conn.(*net.UnixListener); ok {
			ul.SetUnlinkOnClose(false) // the path is the previous build's again
		}
	}
	u.mu.Unlock()
	u.sd.resign()
	u.closeControl()
	u.Stop()
}

// Rollback asks the previous generation, parked in its rollback window
// (Options.RollbackWindow, set in that generation), to take back over:
// it starts its build again with the sockets, and once that is live, this
// generation drains as one that handed over does (Exit closes). Rollback
// returns nil then, or [ErrNoRollback] if no previous generation is
// parked, or an error if the previous generation failed to start its
// build again (it says why in its log; this one serves on), or ctx.Err().
// `handoff rollback` calls it through the control socket.
func (u *Upgrader) Rollback(ctx context.Context, reason error) error {
	if !u.parentParked() {
		return fmt.Errorf("%w: the previous generation had no rollback window, it has passed, or it is gone", ErrNoRollback)
	}
	if reason == nil {
		reason = errors.New("no reason given")
	}
	if err := u.parent.askRollback(reason.Error()); err != nil {
		return fmt.Errorf("upgrade: ask the previous generation to roll back: %w", err)
	}
	select {
	case <-u.parent.retired():
		return nil
	case <-u.parent.gone():
		select {
		case <-u.parent.retired():
			return nil
		default:
		}
		return errors.New("upgrade: rollback failed: the previous generation exited without taking back over (its log says why); this generation serves on")
	case <-ctx.Done():
		return ctx.Err()
	}
}

// parentParked reports whether a previous generation waits in its
// rollback window.
func (u *Upgrader) parentParked() bool {
	if u.parent == nil || !closed(u.readyC) {
		return false
	}
	until, ok := u.parent.parkedUntil()
	return ok && time.Now().Before(until) && !closed(u.parent.gone())
}

// HTTPCheck returns a ready-made Options.HealthCheck: a GET of url on a
// new connection each time (so that it reaches the new generation: the
// parked one accepts none), healthy when the answer is 2xx.
func HTTPCheck(url string) func(context.Context) error {
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("GET %s: %s", url, strings.TrimSpace(resp.Status))
		}
		return nil
	}
}
