package upgrade

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// ServeHTTP serves srv on each of lns until [Upgrader.Exit] is closed,
// then drains without failing a request:
//
//  1. it closes the listeners, so this process stops accepting; the new
//     generation accepts from the same sockets, whose queues are never
//     closed;
//  2. it answers every further request with "Connection: close", so each
//     keep-alive connection ends cleanly after its next response (a
//     response whose header went out before the drain began, such as a
//     long stream, cannot say so: its connection closes after it, as
//     net/http closes connections during Shutdown, and a client that
//     reuses it must retry, as HTTP/1.1 clients do for idempotent
//     requests);
//  3. it gives connections up to Options.IdleGrace to bring that request
//     and close, rather than closing idle ones under a client's feet;
//  4. it calls srv.Shutdown bounded by Options.DrainTimeout (counted from
//     the start of the drain), then waits, within the same deadline, for
//     handlers of hijacked connections (WebSockets; they should return
//     when Exit is closed), and closes whatever is left after that,
//     logging how many connections were cut.
//
// ServeHTTP takes over srv.Handler (wrapped) and srv.ConnState (chained)
// for its lifetime; srv must not be served elsewhere. It returns nil after
// a drain — once every server of this process has drained and the
// shutdown hooks have run, so main may return then — or the error that
// stopped srv.Serve on one of the listeners otherwise (after draining the
// others).
func (u *Upgrader) ServeHTTP(srv *http.Server, lns ...net.Listener) error {
	if len(lns) == 0 {
		return errors.New("upgrade: ServeHTTP needs at least one listener")
	}
	var (
		draining atomic.Bool
		conns    Tracker // HTTP connections, from ConnState
		handlers Tracker // requests in their handlers, hijacked or not
		hijacked Tracker // connections handlers took over, for the final cut
	)
	handler := srv.Handler
	if handler == nil {
		handler = http.DefaultServeMux
	}
	srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer handlers.Add()()
		dw := &drainWriter{ResponseWriter: w, draining: &draining, hijacked: &hijacked}
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
	leave := u.enterServe()
	defer leave()
	serveErr := make(chan error, len(lns))
	for _, ln := range lns {
		go func() { serveErr <- srv.Serve(ln) }()
	}
	var err error
	pending := len(lns)
	select {
	case err = <-serveErr:
		pending--
		select {
		case <-u.Exit():
			err = nil
		default:
		}
	case <-u.Exit():
	}
	select {
	case <-u.Exit():
		u.beforeDrain()
	default: // Serve failed: drain what it had, without the hooks
	}
	start := time.Now()
	draining.Store(true)
	for _, ln := range lns {
		ln.Close()
	}
	// Wait for every Serve to return: a connection accepted just before
	// its listener closed is tracked only once Serve has gone round its
	// loop, and Shutdown drops any request read after it starts, so it
	// must not start while such a connection looks absent.
	for ; pending > 0; pending-- {
		<-serveErr
	}
	ctx, cancel := context.WithTimeout(context.Background(), u.opts.DrainTimeout)
	defer cancel()
	gctx, gcancel := context.WithTimeout(ctx, u.opts.IdleGrace)
	conns.Wait(gctx)
	gcancel()
	cut := 0
	if srv.Shutdown(ctx) != nil {
		cut = conns.Active()
		srv.Close()
	}
	if handlers.Wait(ctx) != nil {
		cut += hijacked.CloseConns()
		gctx, gcancel := context.WithTimeout(context.Background(), u.opts.StopGrace)
		if handlers.Wait(gctx) != nil {
			u.log.Warn("handlers still running after their connections were cut; abandoning them", slog.Int("handlers", handlers.Active()))
		}
		gcancel()
	}
	if cut > 0 {
		u.log.Warn("drain deadline passed; connections cut", slog.Int("cut", cut), slog.Duration("drain_timeout", u.opts.DrainTimeout))
	}
	u.log.Info("drained", slog.Duration("took", time.Since(start)))
	return err
}

// drainWriter adds "Connection: close" to a response whose header is
// written after the drain began, even if its request arrived before: the
// connection then ends after this response instead of idling until
// IdleGrace runs out.
type drainWriter struct {
	http.ResponseWriter
	draining *atomic.Bool
	hijacked *Tracker
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
	switch {
	case code == http.StatusSwitchingProtocols:
		w.marked = true // "Connection: upgrade" must stay
	case code >= 200:
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

// ReadFrom keeps the underlying writer's sendfile path for io.Copy.
func (w *drainWriter) ReadFrom(r io.Reader) (int64, error) {
	w.mark()
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{w.ResponseWriter}, r)
}

// Hijack lets handlers that take over the connection (WebSockets) do so
// through the wrapper; the connection is cut if it outlives the drain.
func (w *drainWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.marked = true
	c, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		w.hijacked.add(c)
	}
	return c, rw, err
}

// Unwrap gives http.ResponseController the underlying writer.
func (w *drainWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
