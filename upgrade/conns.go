package upgrade

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"syscall"
	"time"
)

// ServeConns accepts connections on ln and runs handle for each in its
// own goroutine, from Ready until [Upgrader.Exit] is closed. Then it
// drains: it stops accepting (the new generation accepts from the same
// socket), cancels the ctx passed to handlers so that they finish their
// current exchange and return, waits up to Options.DrainTimeout for them,
// and closes the connections still open, logging how many it cut.
// Handlers need not close their connection; ServeConns does once handle
// returns.
//
// Accept errors that pass (too many open files, a timeout) are retried
// with a back-off. ServeConns returns nil after a drain, once every server
// of this process has drained and the AfterDrain hooks have run, so that
// main may return then; or the error that stopped Accept for good, after
// draining the handlers it had started.
func (u *Upgrader) ServeConns(ln net.Listener, handle func(ctx context.Context, c net.Conn)) error {
	u.drain.enter()
	defer u.drain.leave()
	if !u.awaitReady(ln) {
		return nil // the generation ended before it served
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var t tracker
	acceptErr := make(chan error, 1)
	go func() {
		acceptErr <- acceptLoop(ln, func(c net.Conn) {
			t.add(c)
			go func() {
				defer t.release(c)
				defer c.Close()
				handle(ctx, c)
			}()
		})
	}()
	var err error
	select {
	case err = <-acceptErr:
		select {
		case <-u.exitC: // closed by someone draining: not an error
			err = nil
		default:
		}
	case <-u.exitC:
		ln.Close()
		<-acceptErr
	}
	cancel()
	u.drainTracked(&t)
	return err
}

// awaitReady waits until Ready has returned, so that a server started
// early does not serve before its parent says go; false, with lns closed,
// if the generation ended first.
func (u *Upgrader) awaitReady(lns ...net.Listener) bool {
	select {
	case <-u.readyC:
		return true
	case <-u.exitC:
		for _, ln := range lns {
			ln.Close()
		}
		return false
	}
}

// acceptLoop accepts until a lasting error, retrying passing ones.
func acceptLoop(ln net.Listener, serve func(net.Conn)) error {
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err == nil {
			delay = 0
			serve(c)
			continue
		}
		if !temporary(err) {
			return err
		}
		delay = min(max(2*delay, 5*time.Millisecond), time.Second)
		time.Sleep(delay)
	}
}

// temporary reports whether an Accept error may pass: descriptors or
// buffers ran out, or a deadline was set.
func temporary(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// drainTracked waits up to DrainTimeout for t, then cuts its connections
// and gives the handlers StopGrace more to return. It never blocks for
// good: a handler stuck on something other than its connection is
// abandoned.
func (u *Upgrader) drainTracked(t *tracker) {
	ctx, cancel := context.WithTimeout(context.Background(), u.opts.DrainTimeout)
	defer cancel()
	if t.wait(ctx) == nil {
		return
	}
	n := t.closeConns()
	u.log.Warn("drain deadline passed; connections cut", slog.Int("cut", n), slog.Duration("drain_timeout", u.opts.DrainTimeout))
	ctx, cancel = context.WithTimeout(context.Background(), u.opts.StopGrace)
	defer cancel()
	if t.wait(ctx) != nil {
		u.log.Warn("handlers still running after their connections were cut; abandoning them", slog.Int("handlers", t.active()))
	}
}
