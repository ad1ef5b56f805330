package upgrade

import (
	"bufio"
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
		dw := &drainWriter{ResponseWriter: w, draining: &draining}
		handler.ServeHTTP(dw, r)
		dw.mark() // a handler that wrote nothing gets an empty 200 after it returns
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

// drainWriter adds "Connection: close" to a response whose header is
// written after the drain began, even if its request arrived before: the
// connection then ends after this response instead of idling until
// IdleGrace runs out.
type drainWriter struct {
	http.ResponseWriter
	draining *atomic.Bool
	marked   bool
}

func (w *drainWriter) mark() {
	if !w.marked {
		w.marked = true
		if w.draining.Load() {
			w.Header().Set("Connection", "close")
		}
	}
}

func (w *drainWriter) WriteHeader(code int) {
	if code >= 200 || code == http.StatusSwitchingProtocols {
		w.mark() // informational headers (103 Early Hints) come before the real ones
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *drainWriter) Write(p []byte) (int, error) {
	w.mark()
	return w.ResponseWriter.Write(p)
}

// Flush lets handlers that stream keep doing so through the wrapper.
func (w *drainWriter) Flush() {
	w.mark()
	http.NewResponseController(w.ResponseWriter).Flush()
}

// Hijack lets handlers that take over the connection (WebSockets) do so
// through the wrapper.
func (w *drainWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

// Unwrap gives http.ResponseController the underlying writer.
func (w *drainWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
