package loadgen

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// client sends one request at a time, over its own connection.
type client struct {
	l  *Load
	id int // index in l.clients, for Result.Client

	// Owned by the client's goroutine.
	conn    net.Conn
	h2      *h2conn // with Config.HTTP2, instead of conn
	br      *bufio.Reader
	unwatch func() bool // stops the AfterFunc that closes conn when the load stops
	scratch []byte      // holds the kept part of the last body

	mu sync.Mutex // guards t; Snapshot reads it while the client runs
	t  tally
}

// outcome is what one attempt did.
type outcome struct {
	attempted bool   // a request was dialed for or written; false if abandoned early
	dialed    bool   // a connection was opened
	retried   bool   // HTTP/2: sent again by the transport (see attemptH2)
	kind      string // failure kind, or "" if ok
	status    int
	body      []byte // the kept part of the body; valid until the next attempt
	size      int64  // full body size
	start     time.Time
	latency   time.Duration // to the end of the response, or of the failure
}

func newClient(l *Load, id int) *client {
	c := &client{
		l:       l,
		id:      id,
		scratch: make([]byte, 0, maxKeep),
	}
	if l.cfg.HTTP2 {
		c.h2 = newH2(&l.cfg)
	}
	return c
}

// run sends requests until ctx is done.
func (c *client) run(ctx context.Context) {
	defer c.closeConn()
	var pause *time.Timer
	for ctx.Err() == nil {
		o := c.attempt(ctx)
		if ctx.Err() != nil {
			// The attempt may have been cut short by the load stopping
			// (its connection closed under it): not the server's doing.
			return
		}
		c.mu.Lock()
		c.t.record(o)
		c.mu.Unlock()
		if f := c.l.cfg.OnResult; f != nil && o.attempted {
			f(Result{
				Client:  c.id,
				Start:   o.start,
				Latency: o.latency,
				Kind:    o.kind,
				Status:  o.status,
				Body:    o.body,
				Dialed:  o.dialed,
			})
		}
		if iv := c.l.cfg.Interval; iv > 0 {
			if pause == nil {
				pause = time.NewTimer(iv)
			} else {
				pause.Reset(iv)
			}
			select {
			case <-ctx.Done():
				return
			case <-pause.C:
			}
		}
	}
}

// attempt sends one request and reads its response.
func (c *client) attempt(ctx context.Context) outcome {
	if c.h2 != nil {
		return c.attemptH2(ctx)
	}
	cfg := &c.l.cfg
	start := time.Now()
	o := outcome{start: start}
	if c.conn == nil {
		d := net.Dialer{Timeout: cfg.Timeout}
		conn, err := d.DialContext(ctx, cfg.Network, cfg.Addr)
		if err != nil {
			return c.fail(o, "dial", err)
		}
		o.dialed = true
		if cfg.TLS != nil {
			tc := tls.Client(conn, cfg.TLS)
			c.setConn(ctx, tc)
			o.attempted = true
			tc.SetDeadline(start.Add(cfg.Timeout))
			if err := tc.HandshakeContext(ctx); err != nil {
				return c.fail(o, "tls", err)
			}
		} else {
			c.setConn(ctx, conn)
		}
	}
	o.attempted = true
	// One deadline for the whole request, dial included.
	if err := c.conn.SetDeadline(start.Add(cfg.Timeout)); err != nil {
		return c.fail(o, "write", err)
	}
	if _, err := c.conn.Write(c.l.req); err != nil {
		return c.fail(o, "write", err)
	}
	resp, err := readResponse(c.br, c.scratch[:0])
	if err != nil {
		return c.fail(o, "read", err)
	}
	o.latency = time.Since(start)
	if resp.close || cfg.Mode == NewConn {
		c.closeConn()
	}
	o.status, o.body, o.size = resp.status, resp.body, resp.size
	if resp.status/100 != 2 {
		o.kind = "status " + strconv.Itoa(resp.status)
	}
	return o
}

// fail records err as the outcome of the attempt and drops the connection:
// after a failed request its state is unknown.
func (c *client) fail(o outcome, stage string, err error) outcome {
	o.latency = time.Since(o.start)
	c.closeConn()
	o.attempted = true
	o.kind = classify(stage, err)
	return o
}

func (c *client) setConn(ctx context.Context, conn net.Conn) {
	c.conn = conn
	// Closing the connection is what unblocks a read or write in flight
	// when the load stops; the result of that attempt is then discarded.
	c.unwatch = context.AfterFunc(ctx, func() { conn.Close() })
	if c.br == nil {
		c.br = bufio.NewReaderSize(conn, 4096)
	} else {
		c.br.Reset(conn)
	}
}

func (c *client) closeConn() {
	if c.h2 != nil {
		c.h2.close()
	}
	if c.conn == nil {
		return
	}
	c.unwatch()
	c.conn.Close()
	c.conn = nil
}

// classify turns an error into a short failure kind, "stage: reason", from
// a small fixed set: never an address, port or free-form message.
func classify(stage string, err error) string {
	var pe *protoError
	if errors.As(err, &pe) {
		return "malformed: " + pe.what
	}
	var (
		opErr   *net.OpError
		certErr *tls.CertificateVerificationError
		dnsErr  *net.DNSError
		errno   syscall.Errno
		netErr  net.Error
	)
	reason := "other"
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		reason = "unexpected EOF"
	case errors.Is(err, io.EOF):
		reason = "EOF"
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		reason = "timeout"
	case errors.Is(err, net.ErrClosed):
		reason = "closed"
	case errors.As(err, &opErr) && opErr.Op == "remote error":
		// A TLS alert the server sent: one of a fixed table of messages.
		reason = "alert: " + strings.TrimPrefix(opErr.Err.Error(), "tls: ")
	case errors.As(err, &certErr):
		reason = "certificate not verified"
	case errors.As(err, &dnsErr):
		reason = "lookup failed"
	case errors.Is(err, syscall.ECONNREFUSED):
		reason = "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		reason = "connection reset"
	case errors.Is(err, syscall.EPIPE):
		reason = "broken pipe"
	case errors.As(err, &errno):
		reason = errno.Error() // one of a fixed table of messages
	case errors.As(err, &netErr) && netErr.Timeout():
		reason = "timeout"
	}
	return stage + ": " + reason
}
