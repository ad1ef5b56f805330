//go:build unix

package upgrade

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newServing(t *testing.T, opts Options) (*Upgrader, net.Listener, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	opts.Logger = slog.New(slog.NewTextHandler(logs, nil))
	u, err := New(opts)
	require.NoError(t, err)
	t.Cleanup(u.Stop)
	ln, err := u.Listen(t.Context(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	require.NoError(t, u.Ready())
	return u, ln, logs
}

// requireServed waits for a Serve call to return nil after its drain.
func requireServed(t *testing.T, served <-chan error, msg string) {
	t.Helper()
	select {
	case err := <-served:
		assert.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal(msg)
	}
}

// rawGet writes one HTTP/1.1 request on c and reads the response.
func rawGet(t *testing.T, c net.Conn, r *bufio.Reader, path string) (*http.Response, string) {
	t.Helper()
	_, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n")
	require.NoError(t, err)
	resp, err := http.ReadResponse(r, nil)
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	resp.Body.Close()
	return resp, string(body)
}

// TestServeHTTPDrain: after Exit, a request in flight completes, and a
// keep-alive connection's next request is answered, with
// "Connection: close", instead of the connection being cut.
func TestServeHTTPDrain(t *testing.T) {
	u, ln, _ := newServing(t, Options{DrainTimeout: 5 * time.Second, IdleGrace: 2 * time.Second})
	release := make(chan struct{})
	entered := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		io.WriteString(w, "slow done")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	served := make(chan error, 1)
	go func() { served <- u.Serve(&http.Server{Handler: mux}, ln) }()

	idle, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer idle.Close()
	idleR := bufio.NewReader(idle)
	resp, body := rawGet(t, idle, idleR, "/")
	require.Equal(t, "ok", body)
	require.False(t, resp.Close, "keep-alive before the drain")

	slow, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer slow.Close()
	type result struct {
		body  string
		close bool
	}
	slowDone := make(chan result, 1)
	go func() {
		resp, body := rawGet(t, slow, bufio.NewReader(slow), "/slow")
		slowDone <- result{body, resp.Close}
	}()
	<-entered // the slow request is in its handler

	u.Stop()
	// The drain begins as ServeHTTP sees Exit: until then the idle
	// connection is answered as before; from then on, answered and told
	// to close.
	for deadline := time.Now().Add(5 * time.Second); ; {
		resp, body = rawGet(t, idle, idleR, "/")
		require.Equal(t, "ok", body, "the idle keep-alive connection is still answered")
		if resp.Close || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	assert.True(t, resp.Close, "and told to close")
	close(release)
	slowResp := <-slowDone
	assert.Equal(t, "slow done", slowResp.body)
	assert.True(t, slowResp.close, "a response written during the drain says Connection: close, though its request came before")
	requireServed(t, served, "Serve did not return after the drain")
	_, err = net.DialTimeout("tcp", ln.Addr().String(), time.Second)
	assert.Error(t, err, "nothing accepts after a final stop")
}

// TestServeHTTPDrainDeadline: a request that outlives DrainTimeout is cut
// and the cut is logged.
func TestServeHTTPDrainDeadline(t *testing.T) {
	u, ln, logs := newServing(t, Options{DrainTimeout: 300 * time.Millisecond, IdleGrace: 50 * time.Millisecond, StopGrace: 100 * time.Millisecond})
	block := make(chan struct{})
	defer close(block)
	entered := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { close(entered); <-block })
	served := make(chan error, 1)
	go func() { served <- u.Serve(&http.Server{Handler: h}, ln) }()
	c, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	<-entered
	u.Stop()
	requireServed(t, served, "Serve did not return after DrainTimeout")
	c.SetReadDeadline(time.Now().Add(time.Second))
	_, err = c.Read(make([]byte, 1))
	assert.Error(t, err, "the connection was cut")
	assert.Contains(t, logs.String(), "connections cut")
	assert.Contains(t, logs.String(), "cut=1")
	assert.Contains(t, logs.String(), "abandoning them", "a handler stuck on a channel does not hold the drain for ever")
}

// TestServeConns: handlers see ctx cancelled when the drain starts; one
// that ignores it is cut at DrainTimeout, and the cut is logged.
func TestServeConns(t *testing.T) {
	u, ln, logs := newServing(t, Options{DrainTimeout: 300 * time.Millisecond})
	served := make(chan error, 1)
	entered := make(chan struct{}, 2)
	go func() {
		served <- u.ServeConns(ln, func(ctx context.Context, c net.Conn) {
			line, _ := bufio.NewReader(c).ReadString('\n')
			entered <- struct{}{}
			if strings.HasPrefix(line, "polite") {
				<-ctx.Done()
				io.WriteString(c, "bye\n")
				return
			}
			io.Copy(io.Discard, c) // ignores ctx: only the cut ends it
		})
	}()
	polite, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer polite.Close()
	io.WriteString(polite, "polite\n")
	rude, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer rude.Close()
	io.WriteString(rude, "rude\n")
	<-entered
	<-entered
	u.Stop()
	line, err := bufio.NewReader(polite).ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "bye\n", line)
	requireServed(t, served, "ServeConns did not return")
	assert.Contains(t, logs.String(), "cut=1")
}

func TestTracker(t *testing.T) {
	var tr tracker
	require.NoError(t, tr.wait(t.Context()), "nothing in flight")
	done := tr.hold()
	a, b := net.Pipe()
	defer b.Close()
	tr.add(a)
	assert.Equal(t, 2, tr.active())
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, tr.wait(ctx), context.DeadlineExceeded)
	done()
	done() // idempotent
	assert.Equal(t, 1, tr.active())
	assert.Equal(t, 1, tr.closeConns())
	_, err := a.Write([]byte("x"))
	assert.Error(t, err, "the tracked conn was closed")
	tr.release(a)
	require.NoError(t, tr.wait(t.Context()))
	assert.Equal(t, 0, tr.active())
}

// TestTrackerConcurrent: counted without a lock, a tracker's wait returns
// only once all work is released, and is woken by the last release when
// it was already waiting; a wait that timed out meanwhile, leaving its
// channel behind, and work coming and going on top change neither.
func TestTrackerConcurrent(t *testing.T) {
	waitFor := func(cond func() bool) {
		for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(10 * time.Microsecond) {
			if time.Now().After(deadline) {
				t.Fatal("condition not reached")
			}
		}
	}
	for round := range 200 {
		var tr tracker
		const n = 8
		var released atomic.Int32
		for range n {
			tr.add(nil)
		}
		// A wait that gives up first: its channel stays for the next.
		short, cancel := context.WithTimeout(t.Context(), time.Microsecond)
		assert.ErrorIs(t, tr.wait(short), context.DeadlineExceeded)
		cancel()
		waited := make(chan int32, 1)
		errs := make(chan error, 1)
		go func() {
			errs <- tr.wait(t.Context())
			waited <- released.Load()
		}()
		waitFor(func() bool { return tr.waiting.Load() == 1 }) // it waits, or is about to
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if i%2 == 0 { // work that comes and goes on top
					tr.add(nil)
					tr.release(nil)
				}
				released.Add(1)
				tr.release(nil)
			}()
		}
		wg.Wait()
		select {
		case err := <-errs:
			require.NoError(t, err)
			require.Equal(t, int32(n), <-waited, "round %d: wait returned with work in flight", round)
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: wait was not woken by the last release (%d in flight)", round, tr.active())
		}
		assert.Equal(t, 0, tr.active())
	}
}

// TestKeepAlive: during the drain a response keeps a connection that may
// move alive if its request came before the drain began, or within
// IdleGrace of it; not past IdleGrace, nor one that cannot move.
func TestKeepAlive(t *testing.T) {
	u := &Upgrader{opts: Options{IdleGrace: time.Hour}}
	m := &moves{u: u, created: time.Now().Add(-3 * time.Hour)}
	k := &moveKey{name: "tcp/x"}
	k.phase.Store(phaseMoving)
	c := &movableConn{k: k, m: m}
	require.False(t, m.keepAlive(nil, true), "not a movable connection")

	m.drainStart.Store(m.clock()) // the drain begins now
	assert.True(t, m.keepAlive(c, true), "request before the drain")
	assert.True(t, m.keepAlive(c, false), "request within IdleGrace of the drain")

	m.drainStart.Store(m.clock() - int64(2*time.Hour)) // it began two hours ago
	assert.True(t, m.keepAlive(c, true), "request before the drain")
	assert.False(t, m.keepAlive(c, false), "request past IdleGrace")

	c.setUnmovable()
	assert.False(t, m.keepAlive(c, true), "a connection that cannot move")
	k.phase.Store(phaseStaying)
	c2 := &movableConn{k: k, m: m}
	assert.False(t, m.keepAlive(c2, true), "a key that stays")
}

// TestServeHTTPHijacked: a hijacked connection (a WebSocket, say) is
// drained too: its handler returns when Exit is closed, and one that does
// not is cut at the drain deadline.
func TestServeHTTPHijacked(t *testing.T) {
	for _, polite := range []bool{true, false} {
		t.Run(map[bool]string{true: "returns on Exit", false: "ignores Exit"}[polite], func(t *testing.T) {
			u, ln, logs := newServing(t, Options{DrainTimeout: 300 * time.Millisecond, IdleGrace: 10 * time.Millisecond})
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				c, rw, err := http.NewResponseController(w).Hijack()
				if err != nil {
					return
				}
				defer c.Close()
				rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
				rw.Flush()
				if polite {
					<-u.Exit()
					c.Write([]byte("going away\n"))
					return
				}
				io.Copy(c, c)
			})
			served := make(chan error, 1)
			go func() { served <- u.Serve(&http.Server{Handler: h}, ln) }()
			c, err := net.Dial("tcp", ln.Addr().String())
			require.NoError(t, err)
			defer c.Close()
			r := bufio.NewReader(c)
			io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
			resp, err := http.ReadResponse(r, nil)
			require.NoError(t, err)
			require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
			u.Stop()
			requireServed(t, served, "Serve did not return")
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			line, err := r.ReadString('\n')
			if polite {
				assert.Equal(t, "going away\n", line)
				assert.NotContains(t, logs.String(), "cut=")
			} else {
				assert.Error(t, err, "the hijacked connection was cut")
				assert.Contains(t, logs.String(), "cut=1")
			}
		})
	}
}

// TestServeHTTPTwoListeners: one server on two listeners drains both.
func TestServeHTTPTwoListeners(t *testing.T) {
	u, err := New(Options{IdleGrace: 10 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(u.Stop)
	ln, err := u.Listen(t.Context(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	_, err = u.Listen(t.Context(), "tcp", "127.0.0.1:0")
	require.Error(t, err, "the same key twice is refused")
	ln2, err := u.Listen(t.Context(), "tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	require.NoError(t, u.Ready())
	_, err = u.Listen(t.Context(), "tcp6", "[::1]:0")
	require.ErrorContains(t, err, "called after Ready: take every socket")
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	served := make(chan error, 1)
	go func() { served <- u.Serve(&http.Server{Handler: h}, ln, ln2) }()
	for _, l := range []net.Listener{ln, ln2} {
		c, err := net.Dial("tcp", l.Addr().String())
		require.NoError(t, err)
		_, body := rawGet(t, c, bufio.NewReader(c), "/")
		assert.Equal(t, "ok", body)
		c.Close()
	}
	u.Stop()
	requireServed(t, served, "Serve did not return")
	for _, l := range []net.Listener{ln, ln2} {
		_, err := net.DialTimeout("tcp", l.Addr().String(), time.Second)
		assert.Error(t, err, "both listeners closed")
	}
}

// flakyListener fails Accept with the given errors, then accepts from ln.
type flakyListener struct {
	net.Listener
	errs []error
}

func (f *flakyListener) Accept() (net.Conn, error) {
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		return nil, err
	}
	return f.Listener.Accept()
}

// TestServeConnsRetriesTemporaryErrors: running out of descriptors does
// not end the server.
func TestServeConnsRetriesTemporaryErrors(t *testing.T) {
	u, ln, _ := newServing(t, Options{})
	fl := &flakyListener{Listener: ln, errs: []error{
		&net.OpError{Op: "accept", Err: os.NewSyscallError("accept4", syscall.EMFILE)},
		&net.OpError{Op: "accept", Err: os.NewSyscallError("accept4", syscall.ENFILE)},
	}}
	served := make(chan error, 1)
	go func() {
		served <- u.ServeConns(fl, func(ctx context.Context, c net.Conn) { io.WriteString(c, "hi\n") })
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	line, err := bufio.NewReader(c).ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "hi\n", line)
	u.Stop()
	assert.NoError(t, <-served)
}

// TestShutdownHooks: hooks run in phase order, registration order within
// a phase, each bounded by its timeout — on a hand-over and on a plain
// stop alike. BeforeDrain runs while the server still accepts; a hook
// registered after its time does not run, and says so.
func TestShutdownHooks(t *testing.T) {
	for _, how := range []string{"stop", "hand-over"} {
		t.Run(how, func(t *testing.T) {
			logs := &syncBuffer{}
			opts := Options{IdleGrace: 10 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(logs, nil))}
			var u *Upgrader
			if how == "hand-over" {
				u = newTestUpgrader(t, "ready", opts)
			} else {
				var err error
				u, err = New(opts)
				require.NoError(t, err)
				t.Cleanup(u.Stop)
			}
			ln, err := u.Listen(t.Context(), "tcp", "127.0.0.1:0")
			require.NoError(t, err)
			var mu sync.Mutex
			var order []string
			note := func(s string) {
				mu.Lock()
				defer mu.Unlock()
				order = append(order, s)
			}
			u.AfterDrain("flush", 0, func(context.Context) error { note("after-drain"); return nil })
			u.AfterDrain("last", 0, func(context.Context) error { note("last"); return nil })
			u.BeforeDrain("deregister", 0, func(context.Context) error {
				// A real request, answered by this process: it still serves.
				c, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					return err
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err == nil && resp.StatusCode == http.StatusTeapot {
					note("before-drain: still serving")
				}
				return nil
			})
			release := make(chan struct{})
			t.Cleanup(func() { close(release) })
			u.BeforeDrain("stuck", 50*time.Millisecond, func(ctx context.Context) error {
				note("stuck")
				<-release // overruns: logged, and the next hook runs
				return nil
			})
			u.BeforeDrain("fails", 0, func(context.Context) error {
				note("fails")
				return errors.New("registry unreachable")
			})
			require.NoError(t, u.Ready())
			served := make(chan error, 1)
			teapot := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
			go func() { served <- u.Serve(&http.Server{Handler: teapot}, ln) }()
			if how == "hand-over" {
				require.NoError(t, u.Upgrade(t.Context()))
			} else {
				u.Stop()
			}
			requireServed(t, served, "Serve did not return")
			u.BeforeDrain("late", 0, func(context.Context) error { note("late"); return nil })
			mu.Lock()
			defer mu.Unlock()
			assert.Equal(t, []string{"before-drain: still serving", "stuck", "fails", "after-drain", "last"}, order)
			assert.Contains(t, logs.String(), "overran its timeout")
			assert.Contains(t, logs.String(), "registry unreachable")
			assert.Contains(t, logs.String(), "registered too late")
		})
	}
}

// TestHold: a server that drains by itself, counted with Hold from its
// start, keeps ServeConns from returning (and the AfterDrain hooks from
// running) until its own drain is done, however fast ServeConns drains;
// and its own Done does not wait for itself.
func TestHold(t *testing.T) {
	u, err := New(Options{})
	require.NoError(t, err)
	t.Cleanup(u.Stop)
	ln, err := u.Listen(t.Context(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var before, after atomic.Bool
	u.BeforeDrain("mark", 0, func(context.Context) error { before.Store(true); return nil })
	u.AfterDrain("mark", 0, func(context.Context) error { after.Store(true); return nil })
	require.NoError(t, u.Ready())
	h := u.Hold()
	served := make(chan error, 1)
	go func() { served <- u.ServeConns(ln, func(ctx context.Context, c net.Conn) {}) }()
	u.Stop()
	assert.True(t, before.Load(), "Stop returns once the BeforeDrain hooks ran and Exit closed")
	select {
	case err := <-served:
		t.Fatalf("ServeConns returned (%v) while another server was held", err)
	case <-time.After(200 * time.Millisecond):
	}
	assert.False(t, after.Load(), "AfterDrain ran while a server was held")
	returned := make(chan struct{})
	go func() { h.Done(); h.Done(); close(returned) }() // twice is fine
	for _, c := range []<-chan struct{}{returned, func() <-chan struct{} {
		ch := make(chan struct{})
		go func() { assert.NoError(t, <-served); close(ch) }()
		return ch
	}()} {
		select {
		case <-c:
		case <-time.After(10 * time.Second): // far below DrainTimeout+StopGrace, which a self-wait would take
			t.Fatal("Done or ServeConns did not return after the held server drained")
		}
	}
	assert.True(t, after.Load())
}

// TestHijackedSessionsReleased: a hijacked connection leaves the drain's
// books when it is closed, so that 10,000 short WebSocket-like sessions in
// one generation leave nothing behind, and the cut at the drain deadline
// counts the one connection still open — and a session whose handler
// returned early, leaving the connection to a goroutine, is waited for.
func TestHijackedSessionsReleased(t *testing.T) {
	u, ln, logs := newServing(t, Options{DrainTimeout: 300 * time.Millisecond, IdleGrace: 10 * time.Millisecond})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		rw.Flush()
		go func() { // the handler returns; the session lives on
			defer c.Close()
			io.Copy(c, c)
		}()
	})
	served := make(chan error, 1)
	go func() { served <- u.Serve(&http.Server{Handler: h}, ln) }()
	session := func() net.Conn {
		c, err := net.Dial("tcp", ln.Addr().String())
		require.NoError(t, err)
		r := bufio.NewReader(c)
		io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		resp, err := http.ReadResponse(r, nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
		io.WriteString(c, "ping\n")
		line, err := r.ReadString('\n')
		require.NoError(t, err)
		require.Equal(t, "ping\n", line)
		return c
	}
	const n = 10000
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				c := session()
				c.Close() // the server's io.Copy sees EOF and closes its end
			}
		}()
	}
	wg.Wait()
	open := session()
	defer open.Close()
	u.Stop()
	requireServed(t, served, "Serve did not return")
	assert.Contains(t, logs.String(), "cut=1 ", "only the session still open is cut")
	open.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err := open.Read(make([]byte, 1))
	assert.Error(t, err, "the open session was cut at the deadline, not left")
}

// BenchmarkTracker counts requests in and out from every CPU at once, as
// Serve counts each request's handler.
func BenchmarkTracker(b *testing.B) {
	var tr tracker
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			tr.add(nil)
			tr.release(nil)
		}
	})
}
