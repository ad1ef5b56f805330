package upgrade

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// serveHTTP is Serve for an *http.Server: see Serve for the drain.
func (u *Upgrader) serveHTTP(srv *http.Server, lns []net.Listener) error {
	var (
		draining atomic.Bool
		conns    tracker // HTTP connections, from ConnState
		handlers tracker // requests in their handlers, hijacked or not
		hijacked tracker // connections handlers took over, for the final cut
	)
	mv := u.newMoves(srv)
	serveLns := make([]net.Listener, len(lns))
	for i, ln := range lns {
		serveLns[i] = mv.wrap(ln)
	}
	handler := srv.Handler
	if handler == nil {
		handler = http.DefaultServeMux
	}
	srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handlers.add(nil)
		defer handlers.release(nil)
		dw := &drainWriter{ResponseWriter: w, draining: &draining, hijacked: &hijacked,
			mv: mv, conn: movableOf(r.Context()), beforeDrain: mv.drainStart.Load() == 0}
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
		mv.state(c, s)
		if userState != nil {
			userState(c, s)
		}
	}
	userContext := srv.ConnContext
	srv.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		if userContext != nil {
			ctx = userContext(ctx, c)
		}
		if mc, ok := c.(*movableConn); ok {
			ctx = context.WithValue(ctx, movableKey{}, mc)
		}
		return ctx
	}
	u.drain.enter()
	defer u.drain.leave()
	if !u.awaitReady(lns...) {
		return nil // the generation ended before it served
	}
	serveErr := make(chan error, len(lns))
	for _, ln := range serveLns {
		go func() { serveErr <- srv.Serve(ln) }()
	}
	mv.start(srv)
	// Shutdown drops any request read after it starts, so it must not
	// start while a connection accepted just before its listener closed
	// looks absent: awaitExit waits for every Serve loop to return.
	err := u.awaitExit(serveErr, len(lns), func() {
		mv.drainBegan() // first: a response that sees draining asks it
		draining.Store(true)
		for _, ln := range lns {
			ln.Close()
		}
	})
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), u.opts.DrainTimeout)
	defer cancel()
	// Idle keep-alive connections move to the new generation if it takes
	// them; busy ones once their response is out.
	if mv.begin(start.Add(min(takeWait, u.opts.IdleGrace/2))) {
		if mv.waitMoved(ctx) != nil {
			u.log.Warn("connections still busy at the drain deadline did not move", slog.Int("connections", mv.candidates.active()))
		}
		mv.waitPassed(ctx)
		mv.release(ctx)
	}
	gctx, gcancel := context.WithDeadline(ctx, start.Add(u.opts.IdleGrace))
	conns.wait(gctx)
	gcancel()
	mv.closeFresh()
	mv.stop()
	cut := 0
	if srv.Shutdown(ctx) != nil {
		cut = conns.active()
		srv.Close()
	}
	// Hijacked connections (WebSockets) are waited for too: a handler may
	// return and leave its connection to goroutines of its own.
	if handlers.wait(ctx) != nil || hijacked.wait(ctx) != nil {
		cut += hijacked.closeConns()
		gctx, gcancel := context.WithTimeout(context.Background(), u.opts.StopGrace)
		if handlers.wait(gctx) != nil {
			u.log.Warn("handlers still running after their connections were cut; abandoning them", slog.Int("handlers", handlers.active()))
		}
		gcancel()
	}
	if cut > 0 {
		u.log.Warn("drain deadline passed; connections cut", slog.Int("cut", cut), slog.Duration("drain_timeout", u.opts.DrainTimeout))
	}
	attrs := []any{slog.Duration("took", time.Since(start))}
	if n := mv.moved.Load() - mv.lost.Load(); n > 0 || mv.kept.Load() > 0 {
		attrs = append(attrs, slog.Int64("moved", n), slog.Int64("kept", mv.kept.Load()+mv.lost.Load()))
	}
	u.log.Info("drained", attrs...)
	return err
}

// drainWriter adds "Connection: close" to a response whose header is
// written after the drain began, even if its request arrived before: the
// connection then ends after this response instead of idling until
// IdleGrace runs out.
type drainWriter struct {
	http.ResponseWriter
	draining *atomic.Bool
	hijacked *tracker
	mv       *moves
	conn     *movableConn // nil unless the connection may move
	// beforeDrain: the request came to its handler before the drain
	// began (read from the drain's start, not the clock: the time of
	// every request costs, the flag almost nothing).
	beforeDrain bool
	marked      bool
}

func (w *drainWriter) mark() {
	if !w.marked {
		w.marked = true
		if w.draining.Load() && !w.mv.keepAlive(w.conn, w.beforeDrain) {
			w.Header().Set("Connection", "close")
		}
	}
}

// movableKey is the context key of a request's movable connection.
type movableKey struct{}

// movableOf returns the movable connection a request came on, if any.
func movableOf(ctx context.Context) *movableConn {
	c, _ := ctx.Value(movableKey{}).(*movableConn)
	return c
}

// takeWait bounds how long a drain waits for the new generation to say it
// takes connections: it says so as its Serve starts, right after Ready.
const takeWait = 500 * time.Millisecond

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

// WriteString keeps net/http's path for io.WriteString, which writes the
// string without copying it into a new slice first.
func (w *drainWriter) WriteString(s string) (int, error) {
	w.mark()
	if sw, ok := w.ResponseWriter.(io.StringWriter); ok {
		return sw.WriteString(s)
	}
	return w.ResponseWriter.Write([]byte(s))
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
// through the wrapper. The connection is tracked until it is closed, and
// cut if it outlives the drain.
func (w *drainWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.marked = true
	c, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return c, rw, err
	}
	w.hijacked.add(c)
	hc := &hijackedConn{Conn: c, t: w.hijacked}
	return hc, rw, nil
}

// hijackedConn is a hijacked connection that leaves its tracker when it is
// closed, so that a server of many short WebSocket sessions does not keep
// every one it ever had, and the drain cuts only those still open.
type hijackedConn struct {
	net.Conn
	t    *tracker
	once sync.Once
}

func (c *hijackedConn) Close() error {
	c.once.Do(func() { c.t.release(c.Conn) })
	return c.Conn.Close()
}

// unwrapConn returns the connection under c, for PassConn.
func (c *hijackedConn) unwrapConn() net.Conn { return c.Conn }

// CloseWrite and CloseRead reach the connection's, for protocols that half-close.
func (c *hijackedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

func (c *hijackedConn) CloseRead() error {
	if cr, ok := c.Conn.(interface{ CloseRead() error }); ok {
		return cr.CloseRead()
	}
	return errors.ErrUnsupported
}

// Unwrap gives http.ResponseController the underlying writer.
func (w *drainWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
