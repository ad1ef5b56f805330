package loadgen

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// h2Server starts an HTTPS server that speaks HTTP/2 (and HTTP/1.1) and
// returns its address and a client configuration that trusts it.
func h2Server(t *testing.T, h http.Handler) (string, *tls.Config) {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String(), srv.Client().Transport.(*http.Transport).TLSClientConfig
}

func TestHTTP2OK(t *testing.T) {
	var h1 atomic.Int64
	addr, trusted := h2Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 2 {
			h1.Add(1)
		}
		if r.Header.Get("User-Agent") != "handoff-loadgen" {
			w.WriteHeader(http.StatusBadRequest)
		}
		io.WriteString(w, "hello")
	}))
	st := run(t, Config{Addr: addr, Clients: 4, Mode: KeepAlive, TLS: trusted, HTTP2: true})
	assert.Positive(t, st.Requests)
	assert.Zero(t, st.Failed, st.Errors)
	assert.Zero(t, h1.Load(), "requests that arrived over HTTP/1.1")
	assert.Equal(t, map[string]int64{"hello": st.Requests}, st.Bodies)
	assert.Equal(t, int64(4), st.Conns, "a connection per client, reused")
	assert.Zero(t, st.Retried)
	assert.Positive(t, st.P50)
}

func TestHTTP2LongBody(t *testing.T) {
	body := strings.Repeat("x", 3*maxKeep)
	addr, trusted := h2Server(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, body)
	}))
	st := run(t, Config{Addr: addr, Clients: 2, Mode: KeepAlive, TLS: trusted, HTTP2: true})
	assert.Zero(t, st.Failed, st.Errors)
	assert.Equal(t, map[string]int64{body[:maxKeep] + "…": st.Requests}, st.Bodies)
}

// TestHTTP2ServerWithoutH2: a server that does not offer h2 fails every
// attempt; nothing falls back to HTTP/1.1.
func TestHTTP2ServerWithoutH2(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(hello))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // a refused handshake each
	srv.StartTLS()
	t.Cleanup(srv.Close)
	trusted := srv.Client().Transport.(*http.Transport).TLSClientConfig
	st := run(t, Config{Addr: srv.Listener.Addr().String(), Clients: 2, Mode: KeepAlive, TLS: trusted, HTTP2: true})
	assert.Positive(t, st.Failed)
	assert.Equal(t, st.Requests, st.Failed)
	for k := range st.Errors {
		assert.Equal(t, "tls: alert: no application protocol", k)
	}
}

// TestHTTP2ResetIsFailure: a stream the server resets after it took the
// request is a failure, not retried away.
func TestHTTP2ResetIsFailure(t *testing.T) {
	var n atomic.Int64
	addr, trusted := h2Server(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if n.Add(1)%4 == 0 {
			panic(http.ErrAbortHandler)
		}
		io.WriteString(w, "hello")
	}))
	st := run(t, Config{Addr: addr, Clients: 2, Mode: KeepAlive, TLS: trusted, HTTP2: true})
	require.Positive(t, st.Failed)
	assert.InDelta(t, float64(n.Load())/4, float64(st.Failed), 2, "every fourth request fails, no more, no fewer")
	for k := range st.Errors {
		assert.True(t, strings.HasPrefix(k, "h2: "), k)
		assert.NotEqual(t, "h2: other", k, "a reset is named")
	}
	assert.Zero(t, st.Retried)
}

// TestHTTP2CutShortIsFailure: a response that ends before its body does
// fails; it is not a short body.
func TestHTTP2CutShortIsFailure(t *testing.T) {
	var n atomic.Int64
	addr, trusted := h2Server(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if n.Add(1)%4 != 0 {
			io.WriteString(w, "hello")
			return
		}
		// Three bytes of the five promised, and the stream ends: the
		// transport reports io.ErrUnexpectedEOF.
		w.Header().Set("Content-Length", "5")
		io.WriteString(w, "hel")
	}))
	st := run(t, Config{Addr: addr, Clients: 2, Mode: KeepAlive, TLS: trusted, HTTP2: true})
	require.Positive(t, st.Failed)
	assert.InDelta(t, float64(n.Load())/4, float64(st.Failed), 2, "every fourth request fails")
	assert.Zero(t, st.Bodies["hel"], "no body cut short counted ok")
	assert.Positive(t, st.Bodies["hello"])
}

// TestHTTP2GracefulShutdown: a server that shuts down gracefully (GOAWAY,
// then the streams it took answered) while another takes over the
// listener costs no request: the clients move to new connections.
func TestHTTP2GracefulShutdown(t *testing.T) {
	// A throwaway server for a certificate and a client that trusts it.
	certs := httptest.NewUnstartedServer(nil)
	certs.EnableHTTP2 = true
	certs.StartTLS()
	certs.Close()
	tlsCfg, trusted := certs.TLS, certs.Client().Transport.(*http.Transport).TLSClientConfig

	raw, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { raw.Close() })
	old, next := newRouted(raw), newRouted(raw)
	var cur atomic.Pointer[routed]
	cur.Store(old)
	go func() {
		for {
			c, err := raw.Accept()
			if err != nil {
				return
			}
			if !cur.Load().deliver(c) {
				// Taken as the old listener closed: the new one is current
				// by now. If it is closed too, the test is over.
				if next := cur.Load(); !next.deliver(c) {
					c.Close()
				}
			}
		}
	}()
	serve := func(body string, l net.Listener) *http.Server {
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, body) })}
		go func() {
			if err := srv.Serve(tls.NewListener(l, tlsCfg)); !errors.Is(err, http.ErrServerClosed) {
				t.Errorf("%s server: %v", body, err)
			}
		}()
		t.Cleanup(func() { srv.Close() })
		return srv
	}
	oldSrv := serve("old", old)

	// A body's channel is closed once every client has had an answer
	// with it.
	const clients = 8
	answered := map[string]chan struct{}{"old": make(chan struct{}), "new": make(chan struct{})}
	var mu sync.Mutex
	seen := map[string]map[int]bool{"old": {}, "new": {}}
	onResult := func(r Result) {
		mu.Lock()
		defer mu.Unlock()
		if m, ok := seen[string(r.Body)]; ok && !m[r.Client] {
			if m[r.Client] = true; len(m) == clients {
				close(answered[string(r.Body)])
			}
		}
	}
	waitFor := func(body string) {
		select {
		case <-answered[body]:
		case <-time.After(30 * time.Second):
			t.Fatalf("not every client had an answer from the %s server", body)
		}
	}
	l, err := Start(Config{Addr: raw.Addr().String(), Clients: clients, Mode: KeepAlive, TLS: trusted, HTTP2: true, OnResult: onResult})
	require.NoError(t, err)
	waitFor("old")
	serve("new", next)
	cur.Store(next)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, oldSrv.Shutdown(ctx))
	waitFor("new")
	st := l.Stop()
	t.Log(st)
	assert.Zero(t, st.Failed, st.Errors)
	assert.Positive(t, st.Bodies["old"])
	assert.Positive(t, st.Bodies["new"])
	assert.GreaterOrEqual(t, st.Conns, int64(2*clients), "every client dialed again")
}

// routed is a listener fed the connections another one accepts, while it
// is the current one; Close ends its Accept without closing that listener.
type routed struct {
	net.Listener // for Addr
	conns        chan net.Conn
	done         chan struct{}
	once         sync.Once
}

func newRouted(l net.Listener) *routed {
	return &routed{Listener: l, conns: make(chan net.Conn), done: make(chan struct{})}
}

// deliver hands c to Accept, or reports false if the listener is closed.
func (r *routed) deliver(c net.Conn) bool {
	select {
	case r.conns <- c:
		return true
	case <-r.done:
		return false
	}
}

func (r *routed) Accept() (net.Conn, error) {
	select {
	case c := <-r.conns:
		return c, nil
	case <-r.done:
		return nil, net.ErrClosed
	}
}

func (r *routed) Close() error {
	r.once.Do(func() { close(r.done) })
	return nil
}
