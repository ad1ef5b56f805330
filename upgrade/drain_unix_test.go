//go:build unix

package upgrade

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
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
	mux := http.NewServeMux()
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		<-release
		io.WriteString(w, "slow done")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	served := make(chan error, 1)
	go func() { served <- u.ServeHTTP(&http.Server{Handler: mux}, ln) }()

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
	slowDone := make(chan string, 1)
	go func() {
		_, body := rawGet(t, slow, bufio.NewReader(slow), "/slow")
		slowDone <- body
	}()
	time.Sleep(50 * time.Millisecond) // the slow request is in its handler

	u.Stop()
	stopped := time.Now()
	time.Sleep(50 * time.Millisecond) // the drain has begun
	resp, body = rawGet(t, idle, idleR, "/")
	assert.Equal(t, "ok", body, "the idle keep-alive connection is still answered")
	assert.True(t, resp.Close, "and told to close")
	close(release)
	assert.Equal(t, "slow done", <-slowDone)
	// The slow response was written during the drain, so it carried
	// "Connection: close" too: ServeHTTP returns without waiting out
	// IdleGrace (2s) for an idle connection.
	select {
	case err := <-served:
		assert.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("ServeHTTP did not return after the drain")
	}
	assert.Less(t, time.Since(stopped), 2*time.Second, "no connection was left idle until the grace ran out")
	_, err = net.DialTimeout("tcp", ln.Addr().String(), time.Second)
	assert.Error(t, err, "nothing accepts after a final stop")
}

// TestServeHTTPDrainDeadline: a request that outlives DrainTimeout is cut
// and the cut is logged.
func TestServeHTTPDrainDeadline(t *testing.T) {
	u, ln, logs := newServing(t, Options{DrainTimeout: 300 * time.Millisecond, IdleGrace: 50 * time.Millisecond})
	block := make(chan struct{})
	defer close(block)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block })
	served := make(chan error, 1)
	go func() { served <- u.ServeHTTP(&http.Server{Handler: h}, ln) }()
	c, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	time.Sleep(50 * time.Millisecond)
	u.Stop()
	select {
	case err := <-served:
		assert.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("ServeHTTP did not return after DrainTimeout")
	}
	c.SetReadDeadline(time.Now().Add(time.Second))
	_, err = c.Read(make([]byte, 1))
	assert.Error(t, err, "the connection was cut")
	assert.Contains(t, logs.String(), "connections cut")
	assert.Contains(t, logs.String(), "cut=1")
}

// TestServeConns: handlers see ctx cancelled when the drain starts; one
// that ignores it is cut at DrainTimeout, and the cut is logged.
func TestServeConns(t *testing.T) {
	u, ln, logs := newServing(t, Options{DrainTimeout: 300 * time.Millisecond})
	served := make(chan error, 1)
	go func() {
		served <- u.ServeConns(ln, func(ctx context.Context, c net.Conn) {
			line, _ := bufio.NewReader(c).ReadString('\n')
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
	time.Sleep(50 * time.Millisecond)
	u.Stop()
	line, err := bufio.NewReader(polite).ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "bye\n", line)
	select {
	case err := <-served:
		assert.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("ServeConns did not return")
	}
	assert.Contains(t, logs.String(), "cut=1")
}

func TestTracker(t *testing.T) {
	var tr Tracker
	require.NoError(t, tr.Wait(t.Context()), "nothing in flight")
	done := tr.Add()
	a, b := net.Pipe()
	defer b.Close()
	connDone := tr.Conn(a)
	assert.Equal(t, 2, tr.Active())
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, tr.Wait(ctx), context.DeadlineExceeded)
	done()
	done() // idempotent
	assert.Equal(t, 1, tr.Active())
	assert.Equal(t, 1, tr.CloseConns())
	_, err := a.Write([]byte("x"))
	assert.Error(t, err, "the tracked conn was closed")
	connDone()
	require.NoError(t, tr.Wait(t.Context()))
	assert.Equal(t, 0, tr.Active())
}
