package upgrade

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"
)

// Tracker counts in-flight work and open connections so that a drain can
// wait for them with a deadline and cut what is left. The zero value is
// ready to use; it is safe for concurrent use.
type Tracker struct {
	mu    sync.Mutex
	n     int
	conns map[net.Conn]struct{}
	zero  chan struct{} // closed when n drops to 0; nil while n == 0
}

// Add counts one unit of in-flight work; call done exactly once when it
// is finished.
func (t *Tracker) Add() (done func()) {
	t.add(nil)
	var once sync.Once
	return func() { once.Do(func() { t.release(nil) }) }
}

// Conn counts c as in flight until done is called, and lets
// [Tracker.CloseConns] cut it. done does not close c.
func (t *Tracker) Conn(c net.Conn) (done func()) {
	t.add(c)
	var once sync.Once
	return func() { once.Do(func() { t.release(c) }) }
}

func (t *Tracker) add(c net.Conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.n == 0 {
		t.zero = make(chan struct{})
	}
	t.n++
	if c != nil {
		if t.conns == nil {
			t.conns = make(map[net.Conn]struct{})
		}
		t.conns[c] = struct{}{}
	}
}

func (t *Tracker) release(c net.Conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if c != nil {
		delete(t.conns, c)
	}
	t.n--
	if t.n == 0 {
		close(t.zero)
		t.zero = nil
	}
}

// Active returns the number of units and connections in flight.
func (t *Tracker) Active() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.n
}

// Wait blocks until nothing is in flight, or returns ctx.Err().
func (t *Tracker) Wait(ctx context.Context) error {
	t.mu.Lock()
	zero := t.zero
	t.mu.Unlock()
	if zero == nil {
		return nil
	}
	select {
	case <-zero:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// CloseConns closes every tracked connection still open and returns how
// many it closed. Their handlers still call done as usual.
func (t *Tracker) CloseConns() int {
	t.mu.Lock()
	conns := make([]net.Conn, 0, len(t.conns))
	for c := range t.conns {
		conns = append(conns, c)
	}
	t.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
	return len(conns)
}

// ServeConns accepts connections on ln and runs handle for each in its
// own goroutine until [Upgrader.Exit] is closed. Then it drains: it stops
// accepting (the new generation accepts from the same socket), cancels the
// ctx passed to handlers so that they finish their current exchange and
// return, waits up to Options.DrainTimeout for them, and closes the
// connections still open, logging how many it cut. Handlers need not
// close their connection; ServeConns does once handle returns.
//
// Accept errors that pass (too many open files, a timeout) are retried
// with a back-off. ServeConns returns nil after a drain (once every server
// of this process has drained and the shutdown hooks have run), or the
// error that stopped Accept for good, after draining the handlers it had
// started.
func (u *Upgrader) ServeConns(ln net.Listener, handle func(ctx context.Context, c net.Conn)) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	leave := u.enterServe()
	defer leave()
	var t Tracker
	acceptErr := make(chan error, 1)
	go func() {
		acceptErr <- acceptLoop(ln, func(c net.Conn) {
			done := t.Conn(c)
			go func() {
				defer done()
				defer c.Close()
				handle(ctx, c)
			}()
		})
	}()
	var err error
	select {
	case err = <-acceptErr:
		select {
		case <-u.Exit(): // closed by someone draining: not an error
			err = nil
			u.beforeDrain()
		default:
		}
	case <-u.Exit():
		u.beforeDrain()
		ln.Close()
		<-acceptErr
	}
	cancel()
	u.drain(&t)
	return err
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

// drain waits up to DrainTimeout for t, then cuts its connections and
// gives the handlers StopGrace more to return. It never blocks for good:
// a handler stuck on something other than its connection is abandoned.
func (u *Upgrader) drain(t *Tracker) {
	ctx, cancel := context.WithTimeout(context.Background(), u.opts.DrainTimeout)
	defer cancel()
	if t.Wait(ctx) == nil {
		return
	}
	n := t.CloseConns()
	u.log.Warn("drain deadline passed; connections cut", slog.Int("cut", n), slog.Duration("drain_timeout", u.opts.DrainTimeout))
	ctx, cancel = context.WithTimeout(context.Background(), u.opts.StopGrace)
	defer cancel()
	if t.Wait(ctx) != nil {
		u.log.Warn("handlers still running after their connections were cut; abandoning them", slog.Int("handlers", t.Active()))
	}
}
