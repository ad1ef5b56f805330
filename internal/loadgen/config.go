package loadgen

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"
)

// ErrConfig is wrapped by every error [Run] and [Start] return: the
// [Config] cannot be used as given. The message says which field to fix.
var ErrConfig = errors.New("loadgen: invalid config")

// Mode says how a client uses connections.
type Mode int

const (
	// NewConn opens a fresh connection for every request and sends
	// "Connection: close", so each request exercises accept on the server.
	NewConn Mode = iota

	// KeepAlive gives each client one connection that it reuses. When a
	// response carries "Connection: close" (or is an HTTP/1.0 response
	// without keep-alive) the client closes the connection and dials again
	// for its next request; that is not a failure. A request that was
	// written and got no complete response is a failure, even on a reused
	// connection the server closed while it was idle; the client then dials
	// again.
	KeepAlive
)

// String returns "NewConn" or "KeepAlive".
func (m Mode) String() string {
	switch m {
	case NewConn:
		return "NewConn"
	case KeepAlive:
		return "KeepAlive"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Config describes a load. The zero value of every field except Addr
// works; [Run] and [Start] copy it and never write to the caller's value.
type Config struct {
	// Addr is the server's "host:port", or with Network "unix" the path
	// of its socket. Required.
	Addr string

	// Network is "tcp" (or "tcp4", "tcp6") or "unix". Empty means "tcp".
	Network string

	// Clients is the number of concurrent clients, each with at most one
	// request in flight. Zero means 32.
	Clients int

	// Mode says how clients use connections. Zero means [NewConn].
	Mode Mode

	// Path is the request target. It must start with "/" and contain no
	// spaces or control characters. Empty means "/".
	Path string

	// Timeout bounds one request from the start of its dial (if it needs
	// one) to the last byte of its response. A request that runs out of
	// time is a failure. Zero means 5s.
	Timeout time.Duration

	// Interval is a pause a client takes after each request, to pace the
	// load. Zero means none: clients send back to back, and they do not
	// back off after failures either. In KeepAlive mode, an Interval longer
	// than the server's idle timeout makes the server close connections
	// between requests, and each such request fails.
	Interval time.Duration

	// TLS, if set, makes every connection a TLS client of the server with
	// this configuration: the handshake is part of the attempt that dialed
	// (its failures are of stage "tls"). Without a ServerName, the host of
	// Addr is the name verified. Without a ClientSessionCache every
	// connection makes a full handshake. Nil: plain TCP.
	TLS *tls.Config

	// HTTP2, with TLS, speaks HTTP/2 instead of HTTP/1.1: h2 is the only
	// protocol offered in ALPN, and a server that does not choose it fails
	// every attempt ("tls: ..." or "malformed: ..."). Each client has its own
	// connection with one request in flight on it, through net/http's
	// transport (see [Stats.Retried] for the retries it makes). It needs
	// [KeepAlive] mode and a "tcp" Network.
	HTTP2 bool

	// OnResult, if set, is called with every attempt that is counted in
	// [Stats], ok or failed, right after it is counted, on the goroutine of
	// the client that made it: calls for one client never overlap, calls
	// for different clients do (use [Result.Client] to keep per-client
	// state without locking). It delays that client's next request, so it
	// must be quick. Attempts abandoned at the end of the load are not
	// passed. Nil: none.
	OnResult func(Result)
}

// Result is one counted attempt, as [Config.OnResult] sees it.
type Result struct {
	// Client is the index of the client that made the attempt, from 0 to
	// Clients-1.
	Client int

	// Start is when the attempt began (its dial, if it needed one);
	// Latency runs from Start to the last byte of the response, or to the
	// failure.
	Start   time.Time
	Latency time.Duration

	// Kind is "" if the attempt was ok, or its failure kind as counted in
	// [Stats.Errors] ("dial: connection refused", "status 503", ...).
	Kind string

	// Status is the response's status code, or 0 if none was read.
	Status int

	// Body is the kept part of the response body (at most 256 bytes; nil
	// if none was read). It is only valid during the call: copy it to keep it.
	Body []byte

	// Dialed reports whether the attempt opened a new connection.
	Dialed bool
}

const (
	defaultClients = 32
	defaultTimeout = 5 * time.Second
)

// normalize returns a copy of cfg with defaults filled in, or an error
// wrapping ErrConfig.
func (cfg Config) normalize() (Config, error) {
	if cfg.Network == "" {
		cfg.Network = "tcp"
	}
	switch cfg.Network {
	case "tcp", "tcp4", "tcp6":
		if cfg.Addr == "" {
			return cfg, fmt.Errorf("%w: Addr is empty; set it to the server's host:port", ErrConfig)
		}
		if _, _, err := net.SplitHostPort(cfg.Addr); err != nil {
			return cfg, fmt.Errorf("%w: Addr %q is not host:port: %w", ErrConfig, cfg.Addr, err)
		}
		if hasCtl(cfg.Addr) {
			// It goes into the Host header.
			return cfg, fmt.Errorf("%w: Addr %q contains a space or control character", ErrConfig, cfg.Addr)
		}
	case "unix":
		if cfg.Addr == "" {
			return cfg, fmt.Errorf("%w: Addr is empty; set it to the server's socket path", ErrConfig)
		}
	default:
		return cfg, fmt.Errorf("%w: Network %q is not supported; use \"tcp\" or \"unix\"", ErrConfig, cfg.Network)
	}
	switch {
	case cfg.Clients < 0:
		return cfg, fmt.Errorf("%w: Clients is %d; use a positive number, or zero for %d", ErrConfig, cfg.Clients, defaultClients)
	case cfg.Clients == 0:
		cfg.Clients = defaultClients
	}
	if cfg.Mode != NewConn && cfg.Mode != KeepAlive {
		return cfg, fmt.Errorf("%w: Mode is %v; use NewConn or KeepAlive", ErrConfig, cfg.Mode)
	}
	if cfg.Path == "" {
		cfg.Path = "/"
	}
	if cfg.Path[0] != '/' {
		return cfg, fmt.Errorf("%w: Path %q must start with \"/\"", ErrConfig, cfg.Path)
	}
	if hasCtl(cfg.Path) {
		return cfg, fmt.Errorf("%w: Path %q contains a space or control character; percent-encode it", ErrConfig, cfg.Path)
	}
	switch {
	case cfg.Timeout < 0:
		return cfg, fmt.Errorf("%w: Timeout is %v; use a positive duration, or zero for %v", ErrConfig, cfg.Timeout, defaultTimeout)
	case cfg.Timeout == 0:
		cfg.Timeout = defaultTimeout
	}
	if cfg.TLS != nil && cfg.TLS.ServerName == "" && !cfg.TLS.InsecureSkipVerify {
		cfg.TLS = cfg.TLS.Clone()
		if host, _, err := net.SplitHostPort(cfg.Addr); err == nil {
			cfg.TLS.ServerName = host
		} else {
			cfg.TLS.ServerName = "localhost"
		}
	}
	if cfg.HTTP2 {
		switch {
		case cfg.TLS == nil:
			return cfg, fmt.Errorf("%w: HTTP2 needs TLS (h2 is negotiated in the handshake); set TLS", ErrConfig)
		case cfg.Mode != KeepAlive:
			return cfg, fmt.Errorf("%w: HTTP2 needs Mode KeepAlive: a client keeps its connection and sends one request at a time on it", ErrConfig)
		case cfg.Network == "unix":
			return cfg, fmt.Errorf("%w: HTTP2 needs a \"tcp\" Network: the request names Addr as its authority", ErrConfig)
		}
	}
	if cfg.Interval < 0 {
		return cfg, fmt.Errorf("%w: Interval is %v; use a positive duration, or zero for none", ErrConfig, cfg.Interval)
	}
	return cfg, nil
}

// request returns the bytes of the one request every client sends.
func (cfg Config) request() []byte {
	host := cfg.Addr
	if cfg.Network == "unix" {
		// A socket path is not a valid Host (net/http answers 400 to "/"),
		// and the server does not care which name it was reached by.
		host = "localhost"
	}
	req := "GET " + cfg.Path + " HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: handoff-loadgen\r\n"
	if cfg.Mode == NewConn {
		req += "Connection: close\r\n"
	}
	return []byte(req + "\r\n")
}

// hasCtl reports whether s contains a byte that may not appear unescaped in
// a request line or Host header.
func hasCtl(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f {
			return true
		}
	}
	return false
}
