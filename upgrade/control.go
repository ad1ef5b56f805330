package upgrade

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/handoff-go/handoff/fdpass"
	"github.com/handoff-go/handoff/internal/control"
	"github.com/handoff-go/handoff/internal/wire"
)

// listenControl takes (or, in a first generation, creates with mode 0600)
// the control socket at Options.ControlSocket. It is handed to each new
// generation like a listener, so its path never disappears.
func (u *Upgrader) listenControl() error {
	path := u.opts.ControlSocket
	k := wire.ControlKey(path)
	var ln net.Listener
	err := u.register(k, func() (syscall.Conn, error) {
		var err error
		ln, err = u.in.Listener(k, "unix")
		if errors.Is(err, fdpass.ErrNotFound) {
			var ul *net.UnixListener
			ul, err = control.Listen(path)
			if errors.Is(err, syscall.EADDRINUSE) {
				err = addrInUse("unix", path, err)
			}
			ln = ul
		}
		if err != nil {
			return nil, err
		}
		// Its path is removed by the last generation's drain, not when
		// a listener closes (a listener made by control.Listen does not
		// know it, one inherited must not).
		ln.(*net.UnixListener).SetUnlinkOnClose(false)
		return ln.(syscall.Conn), nil
	})
	if err != nil {
		return fmt.Errorf("upgrade: control socket %s: %w", path, err)
	}
	u.controlLn = ln
	return nil
}

// serveControl answers the control socket until Exit, counting as a
// server that drains: an upgrade's verdict is delivered before this
// process exits.
func (u *Upgrader) serveControl() {
	if u.controlLn == nil {
		return
	}
	u.drain.enter()
	srv := &control.Server{Handler: controlHandler{u}, Logger: u.log}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(u.controlLn)
	}()
	go func() {
		<-u.exitC
		u.closeControl()
		<-done
		u.drain.leave()
	}()
}

// closeControl closes the control socket, once: at the hand-over, so that
// later requests reach the new generation (the one being answered still
// gets its verdict), or when a drain begins. In the last generation it
// removes the path.
func (u *Upgrader) closeControl() {
	if u.controlLn == nil {
		return
	}
	u.controlLn.Close()
	u.mu.Lock()
	final := u.final
	u.mu.Unlock()
	if final {
		os.Remove(u.opts.ControlSocket)
	}
}

// controlHandler carries out control-socket commands.
type controlHandler struct{ u *Upgrader }

// Upgrade answers with the verdict of its own attempt; a refusal (another
// upgrade in progress, say) is its own answer.
func (h controlHandler) Upgrade(ctx context.Context) control.UpgradeResult {
	res, _ := h.u.upgrade(ctx)
	return res
}

func (h controlHandler) Status() control.Status {
	u := h.u
	st := control.Status{
		PID:        os.Getpid(),
		Version:    u.opts.Version,
		Generation: u.gen,
		StartedAt:  u.started,
		Listeners:  []string{},
		Draining:   []int{},
	}
	for _, e := range u.aliveElders() {
		st.Draining = append(st.Draining, e.pid)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, f := range u.files {
		if !strings.HasPrefix(f.name, "control/") {
			st.Listeners = append(st.Listeners, f.name)
		}
	}
	if u.last != nil {
		r := *u.last
		st.LastUpgrade = &r
	}
	st.RolledBack = u.rolledBack
	if u.parentParked() {
		until, _ := u.parent.parkedUntil()
		st.Parked = &control.Parked{PID: u.parent.pid(), LeftMS: float64(time.Until(until).Microseconds()) / 1000}
	}
	return st
}

// Rollback asks the parked previous generation to take back over.
func (h controlHandler) Rollback(ctx context.Context, reason string) control.RollbackResult {
	if reason == "" {
		reason = "asked on the control socket"
	}
	res := control.RollbackResult{PID: os.Getpid()}
	if err := h.u.Rollback(ctx, errors.New(reason)); err != nil {
		res.Error = err.Error()
		return res
	}
	res.OK = true
	return res
}
