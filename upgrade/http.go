package upgrade

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// ServeHTTP serves srv on ln until [Upgrader.Exit] is closed, then drains
// without failing a request:
//
//  1. it closes ln, so this process stops accepting; the new generation
//     accepts from the same socket, whose queue is never closed;
//  2. it answers every further request with "Connection: close", so each
//     keep-alive connection ends cleanly after its next response;
//  3. it gives connections up to Options.IdleGrace to bring that request
//     and close, rather than closing idle ones under a client's feet;
//  4. it calls srv.Shutdown bounded by Options.DrainTimeout (counted from
//     the start of the drain), and closes whatever is left after that,
//     logging how many connections were cut.
//
// ServeHTTP takes over srv.Handler (wrapped) and srv.ConnState (chained)
// for its lifetime; srv must not be started elsewhere. It returns nil
// after a drain, or the error that stopped srv.Serve otherwise.
func (u *Upgrader) ServeHTTP(srv *http.Server, ln net.Listener) error {
	var draining atomic.Bool
	var conns Tracker
	handler := srv.Handler
	if handler == nil {
		handler = http.DefaultServeMux
	}
	srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if draining.Load() {
			w.Header().Set("Connection", "close")
		}
		handler.ServeHTTP(w, r)
	})
	userState := srv.ConnState
	srv.ConnState = func(c net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			conns.add(c)
		case http.StateHijacked, http.StateClosed:
			conns.release(c)
		}
		if userState != nil {
			userState(c, s)
		}
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	select {
	case err := <-serveErr:
		select {
		case <-u.Exit():
		default:
			return err
		}
	case <-u.Exit():
	}
	start := time.Now()
	draining.Store(true)
	ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), u.opts.DrainTimeout)
	defer cancel()
	gctx, gcancel := context.WithTimeout(ctx, u.opts.IdleGrace)
	conns.Wait(gctx)
	gcancel()
	if err := srv.Shutdown(ctx); err != nil {
		n := conns.Active()
		srv.Close()
		u.log.Warn("drain deadline passed; connections cut", slog.Int("cut", n), slog.Duration("drain_timeout", u.opts.DrainTimeout))
	}
	if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
		u.log.Debug("serve ended", slog.Any("error", err))
	}
	u.log.Info("drained", slog.Duration("took", time.Since(start)))
	return nil
}
