//go:build unix

package upgrade

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/handoff-go/handoff/internal/wire"
)

// greeter is a server of its own making that counts what happens to it.
type greeter struct {
	wg       sync.WaitGroup
	accepted atomic.Int32
	answered atomic.Int32
	// hold keeps each connection's handler until closed.
	hold chan struct{}
}

func (g *greeter) Serve(ln net.Listener) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		g.accepted.Add(1)
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			defer c.Close()
			if g.hold != nil {
				<-g.hold
			}
			io.WriteString(c, "hello\n")
			g.answered.Add(1)
		}()
	}
}

// shutdowner drains with Shutdown(ctx), as net/http's servers do.
type shutdowner struct{ greeter }

func (s *shutdowner) Shutdown(ctx context.Context) error {
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// graceful drains with GracefulStop and Stop, as gRPC's server does.
type graceful struct {
	greeter
	stopped atomic.Bool
}

func (s *graceful) GracefulStop() { s.wg.Wait() }
func (s *graceful) Stop()         { s.stopped.Store(true); close(s.hold) }

// TestServeSelfDraining: a server that drains itself is stopped only once
// Exit closes, after it has answered what it accepted; one that overruns
// the drain deadline is stopped.
func TestServeSelfDraining(t *testing.T) {
	t.Run("Shutdown", func(t *testing.T) {
		u, ln, _ := newServing(t, Options{})
		s := &shutdowner{}
		served := make(chan error, 1)
		go func() { served <- u.Serve(s, ln) }()
		var conns []net.Conn
		for range 5 {
			c, err := net.Dial("tcp", ln.Addr().String())
			require.NoError(t, err)
			conns = append(conns, c)
		}
		// Dialed is not accepted: a stop resets what is still queued (CI
		// saw Stop overtake the accepts).
		require.Eventually(t, func() bool { return s.accepted.Load() == 5 }, 5*time.Second, time.Millisecond)
		u.Stop()
		requireServed(t, served, "Serve did not return")
		for _, c := range conns {
			b, err := io.ReadAll(c)
			assert.NoError(t, err)
			assert.Equal(t, "hello\n", string(b), "every accepted connection was answered")
			c.Close()
		}
		assert.Equal(t, int32(5), s.answered.Load())
		_, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second)
		assert.Error(t, err, "the listener is closed")
	})
	t.Run("GracefulStop past the deadline", func(t *testing.T) {
		u, ln, logs := newServing(t, Options{DrainTimeout: 200 * time.Millisecond, StopGrace: time.Second})
		s := &graceful{greeter: greeter{hold: make(chan struct{})}}
		served := make(chan error, 1)
		go func() { served <- u.Serve(s, ln) }()
		c, err := net.Dial("tcp", ln.Addr().String())
		require.NoError(t, err)
		defer c.Close()
		require.Eventually(t, func() bool { return s.accepted.Load() == 1 }, 5*time.Second, time.Millisecond)
		u.Stop()
		requireServed(t, served, "Serve did not return")
		assert.True(t, s.stopped.Load(), "Stop was called at the drain deadline")
		assert.Contains(t, logs.String(), "drain deadline passed")
	})
	t.Run("no way to drain", func(t *testing.T) {
		u, ln, _ := newServing(t, Options{})
		err := u.Serve(&greeter{}, ln)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "cannot be drained")
		assert.Equal(t, 1, strings.Count(err.Error(), "upgrade:"))
	})
}

// TestServeBeforeReady: Serve may be called before Ready; it serves only
// once Ready has returned, so a new generation never serves before its
// parent says go.
func TestServeBeforeReady(t *testing.T) {
	u, err := New(Options{})
	require.NoError(t, err)
	t.Cleanup(u.Stop)
	ln, err := u.Listen(t.Context(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() {
		served <- u.Serve(&http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "ok")
		})}, ln)
	}()
	c, err := net.Dial("tcp", ln.Addr().String()) // queued in the kernel
	require.NoError(t, err)
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	_, err = c.Read(make([]byte, 1))
	require.ErrorIs(t, err, os.ErrDeadlineExceeded, "answered before Ready")
	require.NoError(t, u.Ready())
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	require.NoError(t, err)
	assert.Contains(t, string(b), "\r\n\r\nok")
	u.Stop()
	requireServed(t, served, "Serve did not return")

	// Stopped before Ready: Serve returns at once, and closes its listener.
	u2, err := New(Options{})
	require.NoError(t, err)
	ln2, err := u2.Listen(t.Context(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	u2.Stop()
	assert.NoError(t, u2.ServeConns(ln2, func(context.Context, net.Conn) {}))
	_, err = net.DialTimeout("tcp", ln2.Addr().String(), time.Second)
	assert.Error(t, err)
}

// TestCallsOutOfOrder: a call made in the wrong order fails at once with
// an error that says what to do, in a parent and in a new generation.
func TestCallsOutOfOrder(t *testing.T) {
	t.Run("WaitForParent before Ready", func(t *testing.T) {
		mark := filepath.Join(t.TempDir(), "mark")
		u := newTestUpgrader(t, "waitearly", Options{UpgradeTimeout: 20 * time.Second}, envMark+"="+mark)
		require.NoError(t, u.Ready())
		require.NoError(t, u.Upgrade(t.Context()), "the child did not deadlock waiting for its parent")
		b, err := os.ReadFile(mark)
		require.NoError(t, err)
		assert.Contains(t, string(b), "WaitForParent called before Ready")
	})
	t.Run("a new build whose options New refuses", func(t *testing.T) {
		u := newTestUpgrader(t, "badopts", Options{})
		require.NoError(t, u.Ready())
		err := u.Upgrade(t.Context())
		var ce *ChildError
		require.ErrorAs(t, err, &ce)
		assert.Equal(t, StageFailed, ce.Stage)
		assert.True(t, strings.HasPrefix(ce.Reason, "Options.MaxGenerations is 1"), "the reason carries no prefix of its own: %q", ce.Reason)
		assert.Contains(t, err.Error(), "upgrade: new generation (PID ")
	})
	t.Run("Upgrade before Ready", func(t *testing.T) {
		u, err := New(Options{})
		require.NoError(t, err)
		defer u.Stop()
		err = u.Upgrade(t.Context())
		require.ErrorIs(t, err, ErrNotReady)
		assert.Contains(t, err.Error(), "call Ready before Upgrade")
	})
}

// TestUnknownControlFileClosed: a control file from a newer parent that
// this build does not know is closed at once, so that the parent sees it
// end, while the child lives on.
func TestUnknownControlFileClosed(t *testing.T) {
	ctl, childCtl, err := wire.Pair()
	require.NoError(t, err)
	defer ctl.Close()
	pr, pw, err := os.Pipe()
	require.NoError(t, err)
	defer pr.Close()
	mark := filepath.Join(t.TempDir(), "mark")
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(wire.StripEnv(os.Environ()), envHelper+"=waitparent", envMark+"="+mark, "GORACE=atexit_sleep_ms=0",
		"LISTEN_FDS=0", "LISTEN_FDNAMES=", "HANDOFF=v1;control=ready,future;gen=2;go=1;proto=3")
	cmd.ExtraFiles = []*os.File{childCtl, pw}
	require.NoError(t, cmd.Start())
	defer cmd.Wait()
	childCtl.Close()
	pw.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	require.NoError(t, wire.Wait(ctx, ctl), "ready")
	require.NoError(t, wire.Go(ctl))
	require.NoError(t, wire.WaitLive(ctx, ctl), "live")
	pr.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = pr.Read(make([]byte, 1))
	assert.ErrorIs(t, err, io.EOF, "the child still holds the control file it does not know")
	_, err = os.Stat(mark)
	assert.ErrorIs(t, err, os.ErrNotExist, "the child is alive, waiting for its parent")
	ctl.Close() // this process plays a parent that exits
}

// TestFailedChildLeavesParentsPaths: a new generation that never went live
// and is stopped does not unlink the unix socket path its parent serves
// on, even though it took the listener and was serving it from before
// Ready.
func TestFailedChildLeavesParentsPaths(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s.sock")
	u := newTestUpgrader(t, "hangunix", Options{UpgradeTimeout: slowStart, StopGrace: 5 * time.Second}, envUnix+"="+sock)
	ln, err := u.Listen(t.Context(), "unix", sock)
	require.NoError(t, err)
	defer ln.Close()
	require.NoError(t, u.Ready())
	var ce *ChildError
	require.ErrorAs(t, u.Upgrade(t.Context()), &ce)
	assert.Equal(t, StageTimeout, ce.Stage)
	assert.Equal(t, 0, ce.ProcessState.ExitCode(), "the child stopped gracefully on SIGTERM")
	_, err = os.Stat(sock)
	require.NoError(t, err, "the stopped child unlinked its parent's socket path")
	c, err := net.DialTimeout("unix", sock, time.Second)
	require.NoError(t, err)
	c.Close()
}

// TestBeforeDrainOnlyAfterServing: a generation that never served runs no
// BeforeDrain hook (a new one's would deregister its parent), but its
// AfterDrain hooks, for what it opened.
func TestBeforeDrainOnlyAfterServing(t *testing.T) {
	u, err := New(Options{})
	require.NoError(t, err)
	var before, after atomic.Bool
	u.BeforeDrain("deregister", 0, func(context.Context) error { before.Store(true); return nil })
	u.AfterDrain("close", 0, func(context.Context) error { after.Store(true); return nil })
	u.Stop()
	assert.False(t, before.Load())
	assert.True(t, after.Load())
}

// TestUnixgramPathRemoved: the last generation removes its unixgram
// socket's path when it stops (net never unlinks one), so that the next
// start can bind it again; a path left by a crash is named as stale.
func TestUnixgramPathRemoved(t *testing.T) {
	path := filepath.Join(shortDir(t), "g.sock")
	u, err := New(Options{})
	require.NoError(t, err)
	pc, err := u.ListenPacket(t.Context(), "unixgram", path)
	require.NoError(t, err)
	require.NoError(t, u.Ready())
	u.Stop()
	pc.Close()
	_, err = os.Stat(path)
	assert.ErrorIs(t, err, os.ErrNotExist, "the unixgram path outlived the last generation")

	// A path left behind (by a crash): the error says it is stale.
	left, err := net.ListenPacket("unixgram", path)
	require.NoError(t, err)
	left.Close() // the path stays: nobody unlinks it
	u2, err := New(Options{})
	require.NoError(t, err)
	defer u2.Stop()
	_, err = u2.ListenPacket(t.Context(), "unixgram", path)
	require.ErrorIs(t, err, syscall.EADDRINUSE)
	assert.Contains(t, err.Error(), "a socket file nobody listens on, left by an earlier run; remove it")
}

// shortDir returns a directory whose paths fit in a sockaddr_un.
func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "up")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// TestNewFailsClosesEverything: a new generation whose New fails closes
// every descriptor it was handed — sockets, its readiness channel, stderr's,
// and the channels of elders — before it exits.
func TestNewFailsClosesEverything(t *testing.T) {
	mark := filepath.Join(t.TempDir(), "mark")
	// Two generations above this one: its child gets an elder's channel.
	elderCtl, elderChild, err := wire.Pair()
	require.NoError(t, err)
	defer elderCtl.Close()
	defer elderChild.Close()
	u := newTestUpgrader(t, "badoptsfds", Options{StopGrace: 5 * time.Second}, envMark+"="+mark)
	u.elders = []*elder{{pid: 1, ctl: elderChild, gone: make(chan struct{})}}
	ln, err := u.Listen(t.Context(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	require.NoError(t, u.Ready())
	var ce *ChildError
	require.ErrorAs(t, u.Upgrade(t.Context()), &ce)
	b, err := os.ReadFile(mark)
	require.NoError(t, err)
	assert.Empty(t, string(b), "descriptors still open after New failed")
}
