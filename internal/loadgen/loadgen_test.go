package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// load is how long each test drives load.
const load = 300 * time.Millisecond

func run(t *testing.T, cfg Config) Stats {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), load)
	defer cancel()
	st, err := Run(ctx, cfg)
	require.NoError(t, err)
	t.Logf("%v mode: %v", cfg.Mode, st)
	return st
}

// runFor runs cfg until k results came (or 20 s passed, for a test that
// then fails): for what a loaded machine may not do often in 300 ms, such
// as TLS handshakes in a race build.
func runFor(t *testing.T, cfg Config, k int32) Stats {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var results atomic.Int32
	cfg.OnResult = func(Result) {
		if results.Add(1) >= k {
			cancel()
		}
	}
	st, err := Run(ctx, cfg)
	require.NoError(t, err)
	t.Logf("%v mode: %v", cfg.Mode, st)
	return st
}

func serve(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

func hello(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "hello") }

func TestRunOK(t *testing.T) {
	for _, mode := range []Mode{NewConn, KeepAlive} {
		t.Run(mode.String(), func(t *testing.T) {
			addr := serve(t, hello)
			st := run(t, Config{Addr: addr, Clients: 4, Mode: mode})
			assert.Positive(t, st.Requests)
			assert.Zero(t, st.Failed)
			assert.Empty(t, st.Errors)
			assert.Equal(t, map[string]int64{"hello": st.Requests}, st.Bodies)
			assert.Positive(t, st.P50)
			assert.LessOrEqual(t, st.P50, st.P99)
			assert.LessOrEqual(t, st.P99, st.Max)
			if mode == KeepAlive {
				assert.LessOrEqual(t, st.Conns, int64(4), "keep-alive clients should reuse their connections")
			} else {
				assert.Equal(t, st.Requests, st.Conns)
			}
		})
	}
}

// TestRunTLS: with Config.TLS every connection is a TLS client; without a
// session cache each makes a full handshake, and a server whose
// certificate is not trusted fails every attempt at stage "tls".
func TestRunTLS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(hello))
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()
	trusted := srv.Client().Transport.(*http.Transport).TLSClientConfig
	for _, mode := range []Mode{NewConn, KeepAlive} {
		t.Run(mode.String(), func(t *testing.T) {
			st := runFor(t, Config{Addr: addr, Clients: 4, Mode: mode, TLS: trusted}, 20)
			assert.Positive(t, st.Requests)
			assert.Zero(t, st.Failed)
			assert.Equal(t, map[string]int64{"hello": st.Requests}, st.Bodies)
			if mode == KeepAlive {
				assert.LessOrEqual(t, st.Conns, int64(4))
			} else {
				assert.Equal(t, st.Requests, st.Conns, "a handshake per request")
			}
		})
	}
	t.Run("untrusted", func(t *testing.T) {
		st := runFor(t, Config{Addr: addr, Clients: 2, TLS: &tls.Config{}}, 4)
		assert.Positive(t, st.Failed)
		assert.Equal(t, st.Requests, st.Failed)
		assert.Equal(t, map[string]int64{"tls: certificate not verified": st.Failed}, st.Errors)
	})
}

func TestRunSendsRequest(t *testing.T) {
	type seen struct{ method, path, host, ua, conn string }
	var (
		mu  sync.Mutex
		got []seen
	)
	addr := serve(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, seen{r.Method, r.URL.RequestURI(), r.Host, r.UserAgent(), r.Header.Get("Connection")})
		mu.Unlock()
		hello(w, r)
	})
	st := run(t, Config{Addr: addr, Clients: 1, Mode: NewConn, Path: "/v?x=1", Interval: 50 * time.Millisecond})
	require.Positive(t, st.Requests)
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, seen{"GET", "/v?x=1", addr, "handoff-loadgen", "close"}, got[0])
}

func TestRunStatusFailure(t *testing.T) {
	addr := serve(t, func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "boom", http.StatusInternalServerError)
	})
	for _, mode := range []Mode{NewConn, KeepAlive} {
		t.Run(mode.String(), func(t *testing.T) {
			st := run(t, Config{Addr: addr, Clients: 2, Mode: mode})
			assert.Positive(t, st.Requests)
			assert.Equal(t, st.Requests, st.Failed)
			assert.Equal(t, map[string]int64{"status 500": st.Failed}, st.Errors)
			assert.Empty(t, st.Bodies)
			assert.Zero(t, st.P50, "failures have no latency")
		})
	}
}

// rawServer accepts connections on a fresh loopback listener and hands each
// to handle.
func rawServer(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return ln.Addr().String()
}

func TestRunServerClosesWithoutAnswer(t *testing.T) {
	addr := rawServer(t, func(net.Conn) {})
	for _, mode := range []Mode{NewConn, KeepAlive} {
		t.Run(mode.String(), func(t *testing.T) {
			st := run(t, Config{Addr: addr, Clients: 2, Mode: mode})
			assert.Positive(t, st.Requests)
			assert.Equal(t, st.Requests, st.Failed)
			assert.NotEmpty(t, st.Errors)
			var sum int64
			for kind, n := range st.Errors {
				sum += n
				assert.Regexp(t, `^(write|read): (EOF|connection reset|broken pipe)$`, kind)
			}
			assert.Equal(t, st.Failed, sum)
		})
	}
}

// TestRunIdleCloseIsFailure checks there is no forgiveness for a reused
// connection the server closed while it was idle: the server answers one
// request per connection without saying "Connection: close", then closes.
func TestRunIdleCloseIsFailure(t *testing.T) {
	addr := rawServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			if line == "\r\n" {
				break
			}
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	})
	st := run(t, Config{Addr: addr, Clients: 2, Mode: KeepAlive})
	assert.Positive(t, st.Requests-st.Failed)
	assert.Positive(t, st.Failed)
	assert.Equal(t, st.Requests-st.Failed, st.Bodies["ok"])
	for kind := range st.Errors {
		assert.Regexp(t, `^(write|read): (EOF|connection reset|broken pipe)$`, kind)
	}
}

func TestRunConnectionClose(t *testing.T) {
	addr := serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		hello(w, r)
	})
	st := run(t, Config{Addr: addr, Clients: 4, Mode: KeepAlive})
	assert.Positive(t, st.Requests)
	assert.Zero(t, st.Failed, "errors: %v", st.Errors)
	assert.Equal(t, st.Requests, st.Bodies["hello"])
	assert.GreaterOrEqual(t, st.Conns, st.Requests, "a client must reconnect after Connection: close")
}

func TestRunChunked(t *testing.T) {
	addr := serve(t, func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "version=")
		w.(http.Flusher).Flush() // forces chunked encoding
		io.WriteString(w, "v2")
	})
	for _, mode := range []Mode{NewConn, KeepAlive} {
		t.Run(mode.String(), func(t *testing.T) {
			st := run(t, Config{Addr: addr, Clients: 2, Mode: mode})
			assert.Positive(t, st.Requests)
			assert.Zero(t, st.Failed, "errors: %v", st.Errors)
			assert.Equal(t, map[string]int64{"version=v2": st.Requests}, st.Bodies)
		})
	}
}

func TestRunLongBody(t *testing.T) {
	body := strings.Repeat("x", 10000)
	addr := serve(t, func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, body) })
	st := run(t, Config{Addr: addr, Clients: 2, Mode: KeepAlive})
	assert.Zero(t, st.Failed, "errors: %v", st.Errors)
	assert.Equal(t, map[string]int64{body[:maxKeep] + "…": st.Requests}, st.Bodies)
}

func TestRunUnix(t *testing.T) {
	// t.TempDir can exceed the ~108 bytes a socket path may have.
	dir, err := os.MkdirTemp("", "loadgen")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "s")
	ln, err := net.Listen("unix", path)
	require.NoError(t, err)
	srv := &http.Server{Handler: http.HandlerFunc(hello)}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	for _, mode := range []Mode{NewConn, KeepAlive} {
		t.Run(mode.String(), func(t *testing.T) {
			st := run(t, Config{Network: "unix", Addr: path, Clients: 4, Mode: mode})
			assert.Positive(t, st.Requests)
			assert.Zero(t, st.Failed, "errors: %v", st.Errors)
			assert.Equal(t, st.Requests, st.Bodies["hello"])
		})
	}
}

func TestRunRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	st := run(t, Config{Addr: addr, Clients: 1, Interval: 10 * time.Millisecond})
	assert.Positive(t, st.Requests)
	assert.Equal(t, map[string]int64{"dial: connection refused": st.Requests}, st.Errors)
}

func TestRunTimeout(t *testing.T) {
	addr := rawServer(t, func(c net.Conn) { io.Copy(io.Discard, c) }) // never answers
	st := run(t, Config{Addr: addr, Clients: 2, Mode: KeepAlive, Timeout: 50 * time.Millisecond})
	assert.Positive(t, st.Requests)
	assert.Equal(t, map[string]int64{"read: timeout": st.Requests}, st.Errors)
}

// TestStopAbandonsInFlight checks that requests cut off by the end of the
// load are not counted, and that the end does not wait for Timeout.
func TestStopAbandonsInFlight(t *testing.T) {
	addr := rawServer(t, func(c net.Conn) { io.Copy(io.Discard, c) }) // never answers
	for _, mode := range []Mode{NewConn, KeepAlive} {
		t.Run(mode.String(), func(t *testing.T) {
			l, err := Start(Config{Addr: addr, Clients: 8, Mode: mode, Timeout: time.Minute})
			require.NoError(t, err)
			time.Sleep(100 * time.Millisecond)
			begin := time.Now()
			st := l.Stop()
			assert.Less(t, time.Since(begin), 5*time.Second)
			assert.Zero(t, st.Requests)
			assert.Zero(t, st.Failed)
			assert.Empty(t, st.Errors)
		})
	}
}

func TestStartSnapshotStop(t *testing.T) {
	addr := serve(t, hello)
	l, err := Start(Config{Addr: addr, Clients: 2, Mode: KeepAlive})
	require.NoError(t, err)

	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // Snapshot races the clients; -race checks it is safe.
		defer wg.Done()
		var last int64
		for range 20 {
			s := l.Snapshot()
			assert.GreaterOrEqual(t, s.Requests, last)
			last = s.Requests
			time.Sleep(5 * time.Millisecond)
		}
	}()
	wg.Wait()

	st := l.Stop()
	assert.Positive(t, st.Requests)
	assert.Zero(t, st.Failed)
	assert.Positive(t, st.Elapsed)
	assert.Equal(t, st, l.Stop(), "a second Stop returns the same totals")
	assert.Equal(t, st, l.Snapshot(), "nothing changes after Stop")
}

func TestRunContextAlreadyDone(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	st, err := Run(ctx, Config{Addr: "127.0.0.1:1"})
	require.NoError(t, err)
	assert.Zero(t, st.Requests)
	assert.NotNil(t, st.Bodies)
	assert.NotNil(t, st.Errors)
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no addr", Config{}, "Addr is empty"},
		{"no port", Config{Addr: "localhost"}, "not host:port"},
		{"ctl in addr", Config{Addr: "a\nb:80"}, "control character"},
		{"no unix path", Config{Network: "unix"}, "socket path"},
		{"network", Config{Addr: "x:1", Network: "udp"}, `Network "udp"`},
		{"clients", Config{Addr: "x:1", Clients: -1}, "Clients is -1"},
		{"mode", Config{Addr: "x:1", Mode: 7}, "Mode is Mode(7)"},
		{"relative path", Config{Addr: "x:1", Path: "x"}, `must start with "/"`},
		{"space in path", Config{Addr: "x:1", Path: "/a b"}, "space or control"},
		{"timeout", Config{Addr: "x:1", Timeout: -1}, "Timeout is -1ns"},
		{"interval", Config{Addr: "x:1", Interval: -1}, "Interval is -1ns"},
		{"h2 without tls", Config{Addr: "x:1", Mode: KeepAlive, HTTP2: true}, "HTTP2 needs TLS"},
		{"h2 newconn", Config{Addr: "x:1", TLS: &tls.Config{}, HTTP2: true}, "HTTP2 needs Mode KeepAlive"},
		{"h2 unix", Config{Addr: "/s", Network: "unix", Mode: KeepAlive, TLS: &tls.Config{}, HTTP2: true}, `HTTP2 needs a "tcp" Network`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Start(tc.cfg)
			require.ErrorIs(t, err, ErrConfig)
			assert.Contains(t, err.Error(), tc.want)
			_, err = Run(context.Background(), tc.cfg)
			assert.ErrorIs(t, err, ErrConfig)
		})
	}
}

func TestConfigNotModified(t *testing.T) {
	cfg := Config{Addr: "127.0.0.1:1"}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Run(ctx, cfg)
	require.NoError(t, err)
	assert.Equal(t, Config{Addr: "127.0.0.1:1"}, cfg)
}

func TestRequest(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Addr: "127.0.0.1:80"}, "GET / HTTP/1.1\r\nHost: 127.0.0.1:80\r\nUser-Agent: handoff-loadgen\r\nConnection: close\r\n\r\n"},
		{Config{Addr: "h:1", Mode: KeepAlive, Path: "/p"}, "GET /p HTTP/1.1\r\nHost: h:1\r\nUser-Agent: handoff-loadgen\r\n\r\n"},
		{Config{Addr: "/run/s.sock", Network: "unix", Mode: KeepAlive}, "GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: handoff-loadgen\r\n\r\n"},
	} {
		cfg, err := tc.cfg.normalize()
		require.NoError(t, err)
		assert.Equal(t, tc.want, string(cfg.request()), fmt.Sprint(tc.cfg))
	}
}

func TestStatsString(t *testing.T) {
	s := Stats{Requests: 3, Failed: 2, Errors: map[string]int64{"status 500": 1, "read: EOF": 1}, Max: time.Millisecond}
	assert.Equal(t, "requests=3 failed=2 conns=0 p50=0s p99=0s max=1ms elapsed=0s [read: EOF]=1 [status 500]=1", s.String())
}

// collector keeps what OnResult sees, per client, and checks that calls
// for one client never overlap.
type collector struct {
	t       *testing.T
	mu      sync.Mutex
	results []Result
	busy    map[int]bool
}

func (c *collector) on(r Result) {
	c.mu.Lock()
	if c.busy[r.Client] {
		c.t.Errorf("overlapping OnResult calls for client %d", r.Client)
	}
	c.busy[r.Client] = true
	c.mu.Unlock()
	time.Sleep(time.Microsecond) // widen the window for an overlap
	r.Body = bytes.Clone(r.Body)
	c.mu.Lock()
	c.results = append(c.results, r)
	c.busy[r.Client] = false
	c.mu.Unlock()
}

func TestOnResult(t *testing.T) {
	addr := serve(t, hello)
	for _, mode := range []Mode{NewConn, KeepAlive} {
		t.Run(mode.String(), func(t *testing.T) {
			c := &collector{t: t, busy: map[int]bool{}}
			begin := time.Now()
			st := run(t, Config{Addr: addr, Clients: 3, Mode: mode, OnResult: c.on})
			end := time.Now()
			c.mu.Lock()
			defer c.mu.Unlock()
			require.Len(t, c.results, int(st.Requests), "one call per counted attempt")
			clients := map[int]bool{}
			var dialed int64
			for _, r := range c.results {
				clients[r.Client] = true
				assert.Empty(t, r.Kind)
				assert.Equal(t, 200, r.Status)
				assert.Equal(t, "hello", string(r.Body))
				assert.Positive(t, r.Latency)
				assert.False(t, r.Start.Before(begin))
				assert.False(t, r.Start.Add(r.Latency).After(end))
				if r.Dialed {
					dialed++
				}
			}
			assert.Equal(t, map[int]bool{0: true, 1: true, 2: true}, clients)
			assert.Equal(t, st.Conns, dialed)
		})
	}
}

func TestOnResultFailures(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	refused := ln.Addr().String()
	ln.Close()
	status := serve(t, func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "boom", http.StatusServiceUnavailable)
	})
	for _, tc := range []struct {
		name, addr, kind string
		status           int
	}{
		{"refused", refused, "dial: connection refused", 0},
		{"status", status, "status 503", 503},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &collector{t: t, busy: map[int]bool{}}
			st := run(t, Config{Addr: tc.addr, Clients: 1, Interval: 10 * time.Millisecond, OnResult: c.on})
			c.mu.Lock()
			defer c.mu.Unlock()
			require.Len(t, c.results, int(st.Requests))
			require.NotEmpty(t, c.results)
			for _, r := range c.results {
				assert.Equal(t, tc.kind, r.Kind)
				assert.Equal(t, tc.status, r.Status)
				assert.Positive(t, r.Latency, "a failure's latency runs to the failure")
			}
			assert.Equal(t, map[string]int64{tc.kind: st.Requests}, st.Errors)
		})
	}
}
