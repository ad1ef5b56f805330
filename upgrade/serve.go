package upgrade

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Server is a server that Serve runs on listeners and drains. What Serve
// needs besides Serve is found by the methods srv has:
//
//   - *http.Server gets the drain that loses no HTTP request (see Serve);
//   - a server with Shutdown(context.Context) error is shut down with the
//     drain's deadline, then closed with Close() error if it has one;
//   - a server with GracefulStop() and Stop(), such as *grpc.Server, is
//     stopped gracefully, and stopped at the drain's deadline.
type Server interface {
	Serve(net.Listener) error
}

// Serve serves srv on each of lns, from Ready until [Upgrader.Exit] is
// closed, and then drains it without failing a request: it stops
// accepting (the new generation accepts from the same sockets, whose
// queues are never closed), lets srv finish what it has accepted within
// Options.DrainTimeout, counted from the start of the drain, and cuts what
// is left. Serve may be called before Ready: it starts serving once Ready
// has returned.
//
// An *http.Server is drained so: idle HTTP/1.1 keep-alive connections on
// this Upgrader's listeners move to the new generation (see "Connections
// that survive the upgrade" in the package documentation), and busy ones
// once their response is out — a response keeps them alive for that,
// unless the connection keeps bringing new requests here past
// Options.IdleGrace. Every other connection (TLS, HTTP/2, one on a
// listener wrapped by another, all of them when the new generation cannot
// take connections) gets "Connection: close" on each response after the
// drain began, so that it ends cleanly after its next response (one whose
// header went out before the drain, such as a long stream, cannot say so:
// its connection closes after it, as net/http closes connections during
// Shutdown, and a client that reuses it must retry, as HTTP/1.1 clients do
// for idempotent requests), and IdleGrace to bring that request rather
// than being closed idle under a client's feet. Then srv.Shutdown runs
// with what is left of the deadline, and hijacked connections
// (WebSockets) are waited for — their handlers should return when Exit is
// closed, or pass them on with PassConn — and closed at the deadline.
// http.Server.Shutdown alone fails requests in a hand-over: it closes idle
// keep-alive connections that a client is about to reuse. Serve takes
// over srv.Handler (wrapped), srv.ConnState and srv.ConnContext (chained)
// for its lifetime.
//
// Any other server is drained by its own Shutdown or GracefulStop (see
// [Server]), called only once srv has taken up every connection it
// accepted, so that none is closed unanswered (gRPC's GracefulStop would).
//
// Serve returns nil after a drain, once every server of this process has
// drained and the AfterDrain hooks have run, so that main may return then;
// or the error that stopped srv.Serve on one of the listeners, after
// draining the others.
func (u *Upgrader) Serve(srv Server, lns ...net.Listener) error {
	if len(lns) == 0 {
		return errors.New("upgrade: Serve needs at least one listener")
	}
	if hs, ok := srv.(*http.Server); ok {
		return u.serveHTTP(hs, lns)
	}
	stop, err := stopperOf(srv)
	if err != nil {
		return err
	}
	u.drain.enter()
	defer u.drain.leave()
	if !u.awaitReady(lns...) {
		return nil // the generation ended before it served
	}
	var taken tracker
	tls := make([]*takeListener, len(lns))
	serveErr := make(chan error, len(lns))
	for i, ln := range lns {
		tls[i] = &takeListener{Listener: ln, taken: &taken}
		go func() { serveErr <- srv.Serve(tls[i]) }()
	}
	err = u.awaitExit(serveErr, len(lns), func() {
		// Stop accepting ourselves rather than let srv close the
		// listeners: gRPC's GracefulStop, for one, marks the server as
		// stopping first, and closes without a word a connection that
		// Serve had accepted but not yet begun to serve.
		for _, tl := range tls {
			tl.Close()
		}
	})
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), u.opts.DrainTimeout)
	defer cancel()
	if taken.wait(ctx) != nil {
		u.log.Warn("the server did not take up every accepted connection before the drain deadline", slog.Int("connections", taken.active()))
	}
	if stop(ctx, u.opts.StopGrace) {
		u.log.Warn("drain deadline passed; the server was stopped with work in flight", slog.Duration("drain_timeout", u.opts.DrainTimeout))
	}
	u.log.Info("drained", slog.Duration("took", time.Since(start)))
	return err
}

// awaitExit waits for Exit, or for one of n Serve loops to fail, then
// closes the listeners (with closeAll) and waits for every loop to return.
// It returns the error of a loop that failed before Exit, nil otherwise.
// A connection accepted just before its listener closed is taken up only
// once its loop has gone round, so the drain must not begin before.
func (u *Upgrader) awaitExit(serveErr <-chan error, n int, closeAll func()) error {
	var err error
	select {
	case err = <-serveErr:
		n--
		select {
		case <-u.exitC:
			err = nil
		default:
		}
	case <-u.exitC:
	}
	closeAll()
	for ; n > 0; n-- {
		<-serveErr
	}
	return err
}

// stopperOf returns how srv is stopped gracefully within ctx and, past
// it, at once; the result reports whether it had to cut.
func stopperOf(srv Server) (func(ctx context.Context, grace time.Duration) (cut bool), error) {
	if s, ok := srv.(interface{ Shutdown(context.Context) error }); ok {
		closer, _ := srv.(interface{ Close() error })
		return func(ctx context.Context, _ time.Duration) bool {
			if s.Shutdown(ctx) == nil {
				return false
			}
			if closer != nil {
				closer.Close()
			}
			return true
		}, nil
	}
	if s, ok := srv.(interface {
		GracefulStop()
		Stop()
	}); ok {
		return func(ctx context.Context, grace time.Duration) bool {
			stopped := make(chan struct{})
			go func() {
				s.GracefulStop()
				close(stopped)
			}()
			select {
			case <-stopped:
				return false
			case <-ctx.Done():
			}
			// Stop may itself wait (gRPC's, for a connection's
			// handshake), so it is bounded too.
			go s.Stop()
			select {
			case <-stopped:
			case <-time.After(grace):
			}
			return true
		}, nil
	}
	return nil, fmt.Errorf("upgrade: Serve: %T cannot be drained: it has neither Shutdown(context.Context) error nor GracefulStop() and Stop(); serve it with ServeConns or Hold", srv)
}

// takeListener counts the connections it accepted until the server takes
// them up. A connection is taken at its first read, write, deadline or
// close: the first thing a server does with one it serves.
type takeListener struct {
	net.Listener
	taken *tracker
}

func (l *takeListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &takeConn{Conn: c, take: l.taken.hold()}, nil
}

// takeConn is an accepted connection that calls take at its first use.
type takeConn struct {
	net.Conn
	take func() // idempotent
}

func (c *takeConn) Read(b []byte) (int, error)  { c.take(); return c.Conn.Read(b) }
func (c *takeConn) Write(b []byte) (int, error) { c.take(); return c.Conn.Write(b) }
func (c *takeConn) Close() error                { c.take(); return c.Conn.Close() }

func (c *takeConn) SetDeadline(t time.Time) error      { c.take(); return c.Conn.SetDeadline(t) }
func (c *takeConn) SetReadDeadline(t time.Time) error  { c.take(); return c.Conn.SetReadDeadline(t) }
func (c *takeConn) SetWriteDeadline(t time.Time) error { c.take(); return c.Conn.SetWriteDeadline(t) }
