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
// net/http's HTTP/2 transport sends a request again when the server
// refused it unprocessed: a stream above the last one a GOAWAY accepted,
// or reset with REFUSED_STREAM, which RFC 9113 section 8.7 makes safe and
// every HTTP/2 client does. It also does after a stream the server reset
// with PROTOCOL_ERROR (golang/go#47635), which a net/http server sends only
// for a malformed request. Such an attempt counts once, with its latency
// running to the final response, and is counted in [Stats.Retried]. Every
// other error fails the attempt, and so does a body cut short.
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
	o.body, o.size, err = readH2Body(resp.Body, c.scratch[:0])
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

// readH2Body reads a response body to its end, keeping its first maxKeep
// bytes in scratch. Only io.EOF ends it: the transport reports a stream cut
// short (the connection lost, fewer bytes than its Content-Length) as
// io.ErrUnexpectedEOF, which io.ReadFull would pass off as a short body.
func readH2Body(r io.Reader, scratch []byte) (kept []byte, size int64, err error) {
	if cap(scratch) < maxKeep {
		scratch = make([]byte, 0, maxKeep)
	}
	kept = scratch[:0]
	for len(kept) < maxKeep {
		n, err := r.Read(kept[len(kept):maxKeep])
		kept, size = kept[:len(kept)+n], size+int64(n)
		switch {
		case err == io.EOF:
			return kept, size, nil
		case err != nil:
			return kept, size, err
		}
	}
	m, err := io.Copy(io.Discard, r) // io.Copy takes io.EOF as the end
	return kept, size + m, err
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
// a fixed set: its text is the only thing that tells them apart. A GOAWAY
// is looked for first, as its text carries an error code too; a stream
// error may have been sent by the server (a reset) or found by the client.
func h2Reason(err error) string {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "GOAWAY"):
		return "GOAWAY"
	case strings.Contains(msg, "connection lost"):
		return "connection lost"
	}
	for _, code := range []string{"REFUSED_STREAM", "CANCEL", "INTERNAL_ERROR", "PROTOCOL_ERROR",
		"STREAM_CLOSED", "FLOW_CONTROL_ERROR", "ENHANCE_YOUR_CALM", "HTTP_1_1_REQUIRED"} {
		if strings.Contains(msg, code) {
			return "stream error " + code
		}
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
