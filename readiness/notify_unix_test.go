//go:build unix

package readiness

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// listen returns a Receiver in a temporary directory, and its path.
func listen(t *testing.T) (*Receiver, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	r, err := Listen(path)
	require.NoError(t, err)
	t.Cleanup(func() { r.Close() })
	return r, path
}

// TestNotifierDatagrams: each method sends the datagram its doc promises,
// in one piece, and the kernel names the sender.
func TestNotifierDatagrams(t *testing.T) {
	r, path := listen(t)
	n, err := NewNotifier(path)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	next := func() Notification {
		t.Helper()
		got, err := r.Receive(ctx)
		require.NoError(t, err)
		if runtime.GOOS == "linux" {
			assert.Equal(t, os.Getpid(), got.PID, "the kernel names the sender")
		} else {
			assert.Zero(t, got.PID)
		}
		return got
	}
	for _, c := range []struct {
		send func() error
		want []string
	}{
		{func() error { return n.Ready("serving: generation 1") }, []string{"READY=1", "STATUS=serving: generation 1"}},
		{func() error { return n.Ready("") }, []string{"READY=1"}},
		{func() error { return n.Stopping("draining\nnow") }, []string{"STOPPING=1", "STATUS=draining?now"}},
		{func() error { return n.Status("") }, []string{"STATUS="}},
		{func() error { return n.Status("half way") }, []string{"STATUS=half way"}},
		{func() error { return n.MainPID(4312, "upgraded") }, []string{"MAINPID=4312", "READY=1", "STATUS=upgraded"}},
		{func() error { return n.Notify("EXTEND_TIMEOUT_USEC=5000000", "", "X=1") }, []string{"EXTEND_TIMEOUT_USEC=5000000", "X=1"}},
	} {
		require.NoError(t, c.send())
		assert.Equal(t, c.want, next().Lines)
	}

	// Garbage is skipped, not returned.
	c, err := net.Dial("unixgram", path)
	require.NoError(t, err)
	_, err = c.Write([]byte("READY=1\x00"))
	require.NoError(t, err)
	c.Close()
	require.NoError(t, n.Reloading("upgrading"))
	got := next()
	require.Len(t, got.Lines, 3)
	assert.Equal(t, "RELOADING=1", got.Lines[0])
	assert.Equal(t, "STATUS=upgrading", got.Lines[2])
	usec, ok := got.Value("MONOTONIC_USEC")
	require.True(t, ok)
	v, err := strconv.ParseInt(usec, 10, 64)
	require.NoError(t, err)
	assert.Positive(t, v)
}

func TestNotifyReceiveEnds(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify")
	r, err := Listen(path)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err = r.Receive(ctx)
	assert.ErrorIs(t, err, context.DeadlineExceeded)

	// A later Receive is not hit by the earlier deadline.
	n, _ := NewNotifier(path)
	require.NoError(t, n.Ready(""))
	got, err := r.Receive(context.Background())
	require.NoError(t, err)
	assert.Equal(t, []string{"READY=1"}, got.Lines)

	closed := make(chan struct{})
	go func() { time.Sleep(20 * time.Millisecond); r.Close(); close(closed) }()
	_, err = r.Receive(context.Background())
	assert.ErrorIs(t, err, net.ErrClosed)
	<-closed
	_, err = os.Stat(path)
	assert.ErrorIs(t, err, os.ErrNotExist, "Close removes the socket file")
}

func TestNotifierSockets(t *testing.T) {
	n, err := NewNotifier("")
	require.NoError(t, err)
	assert.Nil(t, n)
	assert.NoError(t, n.Ready("x"), "a nil Notifier sends nothing")
	assert.NoError(t, n.MainPID(1, ""))
	n.Watchdog(context.Background(), time.Second, nil) // returns at once

	for _, bad := range []string{"relative/path", "vsock:2:1234", "@"} {
		_, err := NewNotifier(bad)
		assert.ErrorIs(t, err, ErrNotSupported, bad)
	}
	n, err = NewNotifier(filepath.Join(t.TempDir(), "nobody"))
	require.NoError(t, err)
	err = n.Notify("READY=1")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "nobody")

	if runtime.GOOS != "linux" {
		return
	}
	name := "@handoff-test-" + strconv.Itoa(os.Getpid())
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	require.NoError(t, err)
	defer c.Close()
	n, err = NewNotifier(name)
	require.NoError(t, err)
	require.NoError(t, n.Notify("READY=1"))
	buf := make([]byte, 64)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	k, err := c.Read(buf)
	require.NoError(t, err)
	assert.Equal(t, "READY=1", strings.TrimSpace(string(buf[:k])))
}

// TestWatchdog: a ping at once, then one every half timeout, until the
// context ends; a failed send is reported and the pings go on.
func TestWatchdog(t *testing.T) {
	r, path := listen(t)
	n, err := NewNotifier(path)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		n.Watchdog(ctx, 40*time.Millisecond, func(err error) { t.Errorf("ping failed: %v", err) })
		close(done)
	}()
	for range 3 {
		rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
		got, err := r.Receive(rctx)
		rcancel()
		require.NoError(t, err)
		assert.Equal(t, []string{"WATCHDOG=1"}, got.Lines)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Watchdog did not return when its context ended")
	}

	// Nobody listening: failures are reported, and it keeps trying.
	gone, err := NewNotifier(filepath.Join(t.TempDir(), "nobody"))
	require.NoError(t, err)
	failures := make(chan error, 8)
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	go gone.Watchdog(ctx, 20*time.Millisecond, func(err error) {
		select {
		case failures <- err:
		default:
		}
	})
	for range 2 {
		select {
		case err := <-failures:
			assert.Error(t, err)
		case <-time.After(5 * time.Second):
			t.Fatal("a failed ping was not reported")
		}
	}
}
