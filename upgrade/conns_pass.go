package upgrade

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/handoff-go/handoff/internal/wire"
)

// Connections the application serves itself (WebSockets, a line protocol,
// anything on a TCP or unix socket) move with PassConn and ReceiveConns;
// Serve moves idle HTTP/1.1 connections by itself.

// appKey is the wire key of connections of kind.
func appKey(kind string) string { return "app/" + kind }

// ReceiveConns makes this generation resume the connections of kind that
// the previous generation passes with [Upgrader.PassConn]: take is called
// for each, in a goroutine of its own, with the connection, the state
// that came with it, and a context that ends when this generation's drain
// begins (as [Upgrader.ServeConns] gives its handlers). The connection is
// closed once take returns, unless take passed it on; connections still
// in take at DrainTimeout after the drain began are closed, and the drain
// waits for take to return.
//
// Call it before Ready, once per kind: the previous generation passes
// connections of a kind only to a generation that asked for them, and it
// asks at Ready. kind is any name both builds agree on ("ws", "echo");
// printable ASCII without ':' or '/'. In a first generation it is
// accepted, and nothing arrives.
func (u *Upgrader) ReceiveConns(kind string, take func(ctx context.Context, c net.Conn, state []byte)) error {
	if err := checkKind(kind); err != nil {
		return fmt.Errorf("upgrade: ReceiveConns: %w", err)
	}
	if take == nil {
		return errors.New("upgrade: ReceiveConns: take is nil")
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	switch _, dup := u.appTakers[kind]; {
	case u.phase != starting:
		return fmt.Errorf("upgrade: ReceiveConns(%q) called after Ready: call it before, so that the previous generation knows to pass them", kind)
	case dup:
		return fmt.Errorf("upgrade: ReceiveConns(%q) called twice", kind)
	}
	if u.appTakers == nil {
		u.appTakers = map[string]func(context.Context, net.Conn, []byte){}
	}
	u.appTakers[kind] = take
	return nil
}

// PassConn hands c, a connection this generation serves itself, to the
// new generation together with state, and returns nil once that
// generation has taken it: c is closed here then, and the new generation
// resumes it where this one left off, in the take function it gave
// [Upgrader.ReceiveConns] for kind. Call it once Exit is closed, at a
// point where the protocol on c allows it (between two messages), with
// everything this process read from c and has not yet acted on in state
// (what a bufio.Reader has buffered, a partial message) — at most 32 KiB.
// The connection's socket itself carries whatever the kernel holds.
//
// On any error c is still this generation's, open, to drain as before
// (close a WebSocket with 1001, say): the new generation is an older
// build, did not ask for kind, refused it, or there is none (Stop). One
// exception: a new generation that does not answer within DrainTimeout
// (alive but frozen) is left the connection, since serving it here too
// could answer a message twice; c is closed then and the error says so.
//
// c is a connection from a listener of this Upgrader's, or a hijacked
// connection of Serve's; a TLS connection cannot move (its session keys
// stay in this process), nor can one without a socket.
func (u *Upgrader) PassConn(kind string, c net.Conn, state []byte) error {
	if err := checkKind(kind); err != nil {
		return fmt.Errorf("upgrade: PassConn: %w", err)
	}
	if len(state) > wire.MaxConnState {
		return fmt.Errorf("upgrade: PassConn: %d bytes of state, more than %d: pass less, or keep the connection", len(state), wire.MaxConnState)
	}
	raw, err := socketOf(c)
	if err != nil {
		return fmt.Errorf("upgrade: PassConn: %w", err)
	}
	if !closed(u.exitC) {
		return errors.New("upgrade: PassConn: no new generation to pass to yet: call it once Exit is closed")
	}
	p := u.successorPasser()
	if p == nil {
		return fmt.Errorf("upgrade: PassConn: %w: no new generation took over (Stop was called), or it cannot take connections", errNotTaken)
	}
	key := appKey(kind)
	if !p.awaitTake(key, time.Now().Add(takeWait)) {
		return fmt.Errorf("upgrade: PassConn: %w: it did not ask for connections of kind %q (an older build, or no ReceiveConns for it)", errNotTaken, kind)
	}
	if err := p.pass(key, raw, state, u.opts.DrainTimeout, nil); err != nil {
		return fmt.Errorf("upgrade: PassConn: %w", err)
	}
	c.Close() // the socket is closed already; this releases c's wrappers
	return nil
}

// checkKind checks a kind of connection.
func checkKind(kind string) error {
	if err := wire.CheckName(appKey(kind)); err != nil {
		return fmt.Errorf("kind %q: %w", kind, err)
	}
	if kind == "" || strings.Contains(kind, "/") {
		return fmt.Errorf("kind %q: want a non-empty name without '/'", kind)
	}
	return nil
}

// socketOf returns the socket under c: c itself, or what one of Serve's
// wrappers wraps.
func socketOf(c net.Conn) (net.Conn, error) {
	for {
		switch x := c.(type) {
		case *tls.Conn:
			return nil, errors.New("a TLS connection cannot move: its session keys stay in this process; drain it")
		case interface{ unwrapConn() net.Conn }:
			c = x.unwrapConn()
		case syscall.Conn:
			return c, nil
		default:
			return nil, fmt.Errorf("a %T has no socket to pass: pass the net.Conn the listener returned", c)
		}
	}
}

// startReceivingApp registers the take functions of ReceiveConns with the
// connection channel; Ready calls it before announcing them.
func (u *Upgrader) startReceivingApp() {
	if u.receiver == nil {
		return
	}
	u.mu.Lock()
	takers := u.appTakers
	u.mu.Unlock()
	for kind, take := range takers {
		u.receiver.register(appKey(kind), func(c net.Conn, state []byte) bool {
			u.drain.enter() // now: the drain must not finish before take runs
			go u.runTaken(kind, c, state, take)
			return true
		})
	}
}

// runTaken runs take for one received connection, as part of this
// generation's drain, which the caller entered for it.
func (u *Upgrader) runTaken(kind string, c net.Conn, state []byte, take func(context.Context, net.Conn, []byte)) {
	defer u.drain.leave()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		select {
		case <-u.exitC:
		case <-done:
			return
		}
		cancel()
		t := time.NewTimer(u.opts.DrainTimeout)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
			u.log.Warn("drain deadline passed; a received connection was cut", slog.String("kind", kind), slog.Duration("drain_timeout", u.opts.DrainTimeout))
			c.Close()
		}
	}()
	defer close(done)
	defer c.Close()
	take(ctx, c, state)
}
