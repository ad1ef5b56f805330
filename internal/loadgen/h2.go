package loadgen

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// h2conn is a client's HTTP/2 side: a transport of its own, so that the
// client has its own connection (one stream in flight on it, as h2load -m 1),
// and the connections that transport dialed, so that they can all be closed.
type h2conn struct {
	tr  *http.Transport
	url string

	mu    sync.Mutex
	conns []net.Conn
}

// stageError is a dial or handshake failure inside the transport, marked
// with its stage so that it is classified as in HTTP/1.1 mode.
type stageError struct {
	stage string
	err   error
}

func (e *stageError) Error() string { return e.stage + ": " + e.err.Error() }
func (e *stageError) Unwrap() error { return e.err }

func newH2(cfg *Config) *h2conn {
	h := &h2conn{url: "https://" + cfg.Addr + cfg.Path}
	tc := cfg.TLS.Clone()
	tc.NextProtos = []string{"h2"}
	var p http.Protocols
	p.SetHTTP2(true)
	h.tr = &http.Transport{
		Protocols:          &p,
		TLSClientConfig:    tc,
		DisableCompression: true,
		MaxConnsPerHost:    1,
		DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			d := net.Dialer{Timeout: cfg.Timeout}
			conn, err := d.DialContext(ctx, cfg.Network, cfg.Addr)
			if err != nil {
				return nil, &stageError{"dial", err}
			}
			h.mu.Lock()
			h.conns = append(h.conns, conn)
			h.mu.Unlock()
			c := tls.Client(&trackedConn{conn, h}, tc)
			if err := c.HandshakeContext(ctx); err != nil {
				conn.Close()
				return nil, &stageError{"tls", err}
			}
			if p := c.ConnectionState().NegotiatedProtocol; p != "h2" {
				conn.Close()
				return nil, malformed("server did not negotiate h2")
			}
			return c, nil
		},
	}
	return h
}

// attemptH2 sends one request over HTTP/2 and reads its response.
//
// net/http's HTTP/2 transport sends a request again, on a new connection,
// when the server refused it unprocessed: a stream above the last one a
// GOAWAY accepted, or reset with REFUSED_STREAM. RFC 9113 section 8.7 makes
// that safe, and it is what every HTTP/2 client does; such an attempt counts
// once, with its latency running to the final response, and is counted in
// [Stats.Retried]. Every other error fails the attempt.
func (c *client) attemptH2(ctx context.Context) outcome {
	cfg := &c.l.cfg
	start := time.Now()
	o := outcome{start: start, attempted: true}
	rctx, cancel := context.WithDeadline(ctx, start.Add(cfg.Timeout))
	defer cancel()
	conns := 0
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
		conns++
		if !i.Reused {
			o.dialed = true
		}
	}}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(rctx, trace), http.MethodGet, c.h2.url, nil)
	if err != nil {
		return c.fail(o, "write", err)
	}
	req.Header.Set("User-Agent", "handoff-loadgen")
	resp, err := c.h2.tr.RoundTrip(req)
	o.retried = conns > 1
	if err != nil {
		return c.failH2(o, err)
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 {
		return c.failH2(o, malformed("not HTTP/2"))
	}
	n, err := io.ReadFull(resp.Body, c.scratch[:maxKeep])
	o.body, o.size = c.scratch[:n], int64(n)
	if err == nil {
		var m int64
		m, err = io.Copy(io.Discard, resp.Body)
		o.size += m
	} else if errors.Is(err, io.ErrUnexpectedEOF) || err == io.EOF {
		err = nil // a body shorter than maxKeep
	}
	if err != nil {
		return c.failH2(o, err)
	}
	o.latency = time.Since(start)
	o.status = resp.StatusCode
	if resp.StatusCode/100 != 2 {
		o.kind = "status " + strconv.Itoa(resp.StatusCode)
	}
	return o
}

// failH2 is fail for an HTTP/2 attempt: the stage is the one a dial or
// handshake error carries, else "h2", the exchange on a connection.
func (c *client) failH2(o outcome, err error) outcome {
	var se *stageError
	if errors.As(err, &se) {
		return c.fail(o, se.stage, se.err)
	}
	o = c.fail(o, "h2", err)
	if strings.HasSuffix(o.kind, ": other") {
		o.kind = "h2: " + h2Reason(err)
	}
	return o
}

// h2Reason names an HTTP/2 error net/http does not export as a type, from
// a fixed set: its text is the only thing that tells them apart.
func h2Reason(err error) string {
	msg := err.Error()
	for _, code := range []string{"REFUSED_STREAM", "CANCEL", "INTERNAL_ERROR", "PROTOCOL_ERROR",
		"STREAM_CLOSED", "FLOW_CONTROL_ERROR", "ENHANCE_YOUR_CALM", "HTTP_1_1_REQUIRED"} {
		if strings.Contains(msg, code) {
			return "stream reset " + code
		}
	}
	switch {
	case strings.Contains(msg, "GOAWAY"):
		return "GOAWAY"
	case strings.Contains(msg, "connection lost"):
		return "connection lost"
	}
	return "other"
}

// close closes every connection the transport dialed and has not closed.
func (h *h2conn) close() {
	h.tr.CloseIdleConnections()
	h.mu.Lock()
	conns := h.conns
	h.conns = nil
	h.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// trackedConn is a connection of an h2conn that leaves its list when the
// transport closes it.
type trackedConn struct {
	net.Conn
	h *h2conn
}

func (c *trackedConn) Close() error {
	c.h.mu.Lock()
	if i := slices.Index(c.h.conns, c.Conn); i >= 0 {
		c.h.conns = slices.Delete(c.h.conns, i, i+1)
	}
	c.h.mu.Unlock()
	return c.Conn.Close()
}
