package upgrade

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/handoff-go/handoff/fdpass"
	"github.com/handoff-go/handoff/internal/control"
)

// listenControl takes (or, in a first generation, creates with mode 0600)
// the control socket at Options.ControlSocket. It is handed to each new
// generation like a listener, so its path never disappears.
func (u *Upgrader) listenControl() error {
	path := u.opts.ControlSocket
	k := "control/" + strings.TrimPrefix(key("unix", path), "unix/")
	var ln net.Listener
	err := u.register(k, func() (syscall.Conn, error) {
		var err error
		ln, err = u.inherited.Listener(k, "unix")
		if errors.Is(err, fdpass.ErrNotFound) {
			ln, err = net.Listen("unix", path)
			if errors.Is(err, syscall.EADDRINUSE) {
				err = addrInUse("unix", path, err)
			}
			if err == nil {
				if err = control.Chmod(path); err != nil {
					ln.Close()
				}
			}
		}
		if err != nil {
			return nil, err
		}
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
	leave := u.enterServe()
	srv := &control.Server{Handler: controlHandler{u}, Logger: u.log}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(u.controlLn)
	}()
	go func() {
		<-u.Exit()
		u.beforeDrain()
		u.controlLn.Close()
		<-done
		leave()
	}()
}

// controlHandler carries out control-socket commands.
type controlHandler struct{ u *Upgrader }

func (h controlHandler) Upgrade(ctx context.Context) control.UpgradeResult {
	h.u.Upgrade(ctx)
	h.u.mu.Lock()
	defer h.u.mu.Unlock()
	if h.u.lastUpgrade == nil {
		return control.UpgradeResult{OldPID: os.Getpid(), Error: "no upgrade was made"}
	}
	return *h.u.lastUpgrade
}

func (h controlHandler) Status() control.Status {
	u := h.u
	st := control.Status{
		PID:        os.Getpid(),
		Version:    u.opts.Version,
		Generation: u.generation,
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
	if u.lastUpgrade != nil {
		r := *u.lastUpgrade
		st.LastUpgrade = &r
	}
	return st
}

// record keeps the outcome of an upgrade for the control socket's status
// and upgrade replies.
func (u *Upgrader) record(start time.Time, newPID int, err error) {
	r := control.UpgradeResult{
		OK:        err == nil,
		OldPID:    os.Getpid(),
		NewPID:    newPID,
		StartedAt: start,
		TookMS:    float64(time.Since(start).Microseconds()) / 1000,
	}
	var ce *ChildError
	switch {
	case err == nil:
	case errors.As(err, &ce):
		r.NewPID = ce.PID
		r.Stage, r.Reason, r.Signal, r.Stderr = string(ce.Stage), ce.Reason, ce.Signal, ce.Stderr
		if ce.ExitCode >= 0 {
			code := ce.ExitCode
			r.ExitCode = &code
		}
		r.Error = err.Error()
	default:
		r.Error = err.Error()
	}
	u.mu.Lock()
	u.lastUpgrade = &r
	u.mu.Unlock()
	if err != nil && ce == nil {
		u.log.Debug("upgrade refused", slog.Any("error", err))
	}
}
