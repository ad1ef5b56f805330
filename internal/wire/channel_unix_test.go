//go:build unix

package wire_test

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/handoff-go/handoff/internal/wire"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// maxLine is the longest valid message line, without its newline.
const maxLine = len("failed: ") + wire.MaxReason

func pair(t *testing.T) (parent, child *os.File) {
	t.Helper()
	parent, child, err := wire.Pair()
	require.NoError(t, err)
	t.Cleanup(func() {
		parent.Close()
		child.Close()
	})
	return parent, child
}

// wait runs wire.Wait with a generous bound, so that a broken
// implementation fails the test instead of hanging it.
func wait(t *testing.T, parent *os.File) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := wire.Wait(ctx, parent)
	require.NotErrorIs(t, err, context.DeadlineExceeded, "Wait did not return")
	return err
}

func write(t *testing.T, f *os.File, s string) {
	t.Helper()
	_, err := io.WriteString(f, s)
	require.NoError(t, err)
}

func TestPair(t *testing.T) {
	parent, child := pair(t)
	for _, f := range []*os.File{parent, child} {
		fd := int(f.Fd())
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		require.NoError(t, err)
		assert.NotZero(t, flags&unix.FD_CLOEXEC, "%s is not close-on-exec", f.Name())
		fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
		require.NoError(t, err)
		assert.NotZero(t, fl&unix.O_NONBLOCK, "%s is not non-blocking", f.Name())
		typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
		require.NoError(t, err)
		assert.Equal(t, unix.SOCK_STREAM, typ)
	}
}

func TestWait(t *testing.T) {
	tests := []struct {
		name   string
		send   func(t *testing.T, child *os.File)
		ok     bool
		reason string // want a *FailedError with this reason
		msg    string // want a *MessageError with this Msg
		closed bool   // want ErrClosed
	}{
		{name: "ready", send: func(t *testing.T, c *os.File) { require.NoError(t, wire.Ready(c)) }, ok: true},
		{
			name:   "failed",
			send:   func(t *testing.T, c *os.File) { require.NoError(t, wire.Fail(c, "bad config\nline2")) },
			reason: "bad config line2",
		},
		{
			name:   "failed without reason",
			send:   func(t *testing.T, c *os.File) { require.NoError(t, wire.Fail(c, " \n ")) },
			reason: "no reason given",
		},
		{
			name: "failed with the longest reason",
			send: func(t *testing.T, c *os.File) {
				require.NoError(t, wire.Fail(c, strings.Repeat("r", wire.MaxReason)))
			},
			reason: strings.Repeat("r", wire.MaxReason),
		},
		{
			name: "failed with a reason cut to length",
			send: func(t *testing.T, c *os.File) {
				require.NoError(t, wire.Fail(c, strings.Repeat("r", 3*wire.MaxReason)))
			},
			reason: strings.Repeat("r", wire.MaxReason),
		},
		{
			name:   "closed without message",
			send:   func(t *testing.T, c *os.File) { require.NoError(t, c.Close()) },
			closed: true,
		},
		{
			name:   "closed after a partial message",
			send:   func(t *testing.T, c *os.File) { write(t, c, "rea"); require.NoError(t, c.Close()) },
			closed: true,
		},
		{
			name: "garbage",
			send: func(t *testing.T, c *os.File) { write(t, c, "hello\n") },
			msg:  "hello",
		},
		{
			name:   "first message counts",
			send:   func(t *testing.T, c *os.File) { write(t, c, "failed: x\nready\n") },
			reason: "x",
		},
		{
			name: "split across writes",
			send: func(t *testing.T, c *os.File) {
				write(t, c, "fail")
				go func() {
					time.Sleep(20 * time.Millisecond)
					io.WriteString(c, "ed: split\n")
				}()
			},
			reason: "split",
		},
		{
			name: "one byte at a time",
			send: func(t *testing.T, c *os.File) {
				go func() {
					for _, b := range []byte("ready\n") {
						c.Write([]byte{b})
						time.Sleep(2 * time.Millisecond)
					}
				}()
			},
			ok: true,
		},
		{
			name: "longest valid line",
			send: func(t *testing.T, c *os.File) {
				write(t, c, "failed: "+strings.Repeat("q", wire.MaxReason)+"\n")
			},
			reason: strings.Repeat("q", wire.MaxReason),
		},
		{
			name: "over-long line without newline",
			send: func(t *testing.T, c *os.File) { write(t, c, strings.Repeat("z", 3*maxLine)) },
			msg:  strings.Repeat("z", 64),
		},
		{
			name: "over-long failed line without newline",
			send: func(t *testing.T, c *os.File) {
				write(t, c, "failed: "+strings.Repeat("q", 3*wire.MaxReason))
			},
			msg: "failed: " + strings.Repeat("q", 64-len("failed: ")),
		},
		{
			name: "over-long failed line with newline",
			send: func(t *testing.T, c *os.File) {
				write(t, c, "failed: "+strings.Repeat("q", wire.MaxReason+1)+"\n")
			},
			msg: "failed: " + strings.Repeat("q", 64-len("failed: ")),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parent, child := pair(t)
			tt.send(t, child)
			err := wait(t, parent)
			var failed *wire.FailedError
			var bad *wire.MessageError
			switch {
			case tt.ok:
				assert.NoError(t, err)
			case tt.closed:
				assert.ErrorIs(t, err, wire.ErrClosed)
			case tt.reason != "":
				require.ErrorAs(t, err, &failed)
				assert.Equal(t, tt.reason, failed.Reason)
			default:
				require.ErrorAs(t, err, &bad)
				assert.Equal(t, tt.msg, bad.Msg)
			}
		})
	}
}

func TestWaitContext(t *testing.T) {
	t.Run("cancel", func(t *testing.T) {
		parent, _ := pair(t)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- wire.Wait(ctx, parent) }()
		time.Sleep(10 * time.Millisecond)
		cancel()
		select {
		case err := <-done:
			assert.ErrorIs(t, err, context.Canceled)
			assert.Equal(t, context.Canceled, err, "Wait returns ctx.Err() itself")
		case <-time.After(5 * time.Second):
			t.Fatal("Wait did not return after cancel")
		}
	})
	t.Run("already cancelled", func(t *testing.T) {
		parent, _ := pair(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		assert.Equal(t, context.Canceled, wire.Wait(ctx, parent))
	})
	t.Run("deadline", func(t *testing.T) {
		parent, _ := pair(t)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		assert.Equal(t, context.DeadlineExceeded, wire.Wait(ctx, parent))
	})
	t.Run("usable after cancel", func(t *testing.T) {
		parent, child := pair(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		require.Equal(t, context.Canceled, wire.Wait(ctx, parent))
		require.NoError(t, wire.Ready(child))
		assert.NoError(t, wait(t, parent))
	})
	t.Run("cancel racing a message", func(t *testing.T) {
		// A cancel that lands as Wait returns must not leave a stale
		// deadline behind for the next Wait on the same file.
		parent, child := pair(t)
		for i := 0; i < 300; i++ {
			require.NoError(t, wire.Ready(child))
			ctx, cancel := context.WithCancel(context.Background())
			go cancel()
			err := wire.Wait(ctx, parent)
			if err == nil {
				require.NoError(t, wire.Ready(child)) // consumed: send another
			} else {
				require.Equal(t, context.Canceled, err)
			}
			require.NoError(t, wait(t, parent), "iteration %d", i)
		}
	})
}

func TestWaitClosed(t *testing.T) {
	run := func(ctx context.Context, f *os.File) chan error {
		done := make(chan error, 1)
		go func() { done <- wire.WaitClosed(ctx, f) }()
		return done
	}
	result := func(t *testing.T, done chan error) error {
		t.Helper()
		select {
		case err := <-done:
			return err
		case <-time.After(5 * time.Second):
			t.Fatal("WaitClosed did not return")
			return nil
		}
	}
	t.Run("other end closed", func(t *testing.T) {
		parent, child := pair(t)
		done := run(context.Background(), child)
		time.Sleep(10 * time.Millisecond)
		require.NoError(t, parent.Close())
		assert.NoError(t, result(t, done))
	})
	t.Run("bytes are ignored", func(t *testing.T) {
		parent, child := pair(t)
		done := run(context.Background(), child)
		write(t, parent, strings.Repeat("noise\n", 1000))
		require.NoError(t, parent.Close())
		assert.NoError(t, result(t, done))
	})
	t.Run("closed with unread bytes", func(t *testing.T) {
		// The reader closes with unread data: on some systems the other
		// end then sees ECONNRESET rather than EOF.
		parent, child := pair(t)
		write(t, child, "ready\n")
		require.NoError(t, parent.Close())
		assert.NoError(t, result(t, run(context.Background(), child)))
	})
	t.Run("cancel", func(t *testing.T) {
		_, child := pair(t)
		ctx, cancel := context.WithCancel(context.Background())
		done := run(ctx, child)
		time.Sleep(10 * time.Millisecond)
		cancel()
		assert.Equal(t, context.Canceled, result(t, done))
	})
	t.Run("deadline", func(t *testing.T) {
		_, child := pair(t)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		assert.Equal(t, context.DeadlineExceeded, result(t, run(ctx, child)))
	})
}

func TestWriteToClosed(t *testing.T) {
	parent, child := pair(t)
	require.NoError(t, parent.Close())
	err := wire.Ready(child)
	require.Error(t, err)
	assert.True(t, strings.HasPrefix(err.Error(), "write to the readiness channel: "), err.Error())
	assert.True(t, errors.Is(err, unix.EPIPE) || errors.Is(err, unix.ECONNRESET), "%v", err)
}

// TestGo: the starter's answer to ready, and what the started program sees
// when the starter goes away or talks nonsense instead.
func TestGo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	t.Run("go", func(t *testing.T) {
		parent, child := pair(t)
		require.NoError(t, wire.Ready(child))
		require.NoError(t, wait(t, parent))
		require.NoError(t, wire.Go(parent))
		assert.NoError(t, wire.WaitGo(ctx, child))
		parent.Close()
		assert.NoError(t, wire.WaitClosed(ctx, child), "then the starter's exit")
	})
	t.Run("go ahead, ready and live together", func(t *testing.T) {
		parent, child := pair(t)
		assert.False(t, wire.TakeGo(child), "nothing yet")
		require.NoError(t, wire.Go(parent), "said with the start, before the child reads")
		assert.True(t, wire.TakeGo(child), "taken at once")
		assert.False(t, wire.TakeGo(child), "and only once")
		require.NoError(t, wire.ReadyLive(child))
		l := wire.NewLines(parent)
		assert.False(t, l.Buffered(), "nothing read yet")
		assert.NoError(t, l.Wait(ctx), "ready")
		assert.True(t, l.Buffered(), "live came in the read of ready")
		assert.NoError(t, l.WaitLive(ctx), "live, from the same write")
		assert.False(t, l.Buffered(), "and nothing after it")
	})
	t.Run("ready alone", func(t *testing.T) {
		parent, child := pair(t)
		require.NoError(t, wire.Ready(child))
		l := wire.NewLines(parent)
		assert.NoError(t, l.Wait(ctx))
		assert.False(t, l.Buffered(), "live is still to come")
		write(t, child, "li")
		waitCtx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		assert.ErrorIs(t, l.WaitLive(waitCtx), context.DeadlineExceeded, "half a line")
		assert.False(t, l.Buffered(), "half a line is not a line")
		write(t, child, "ve\n")
		assert.NoError(t, l.WaitLive(ctx))
	})
	t.Run("starter gone", func(t *testing.T) {
		parent, child := pair(t)
		parent.Close()
		assert.False(t, wire.TakeGo(child))
		assert.ErrorIs(t, wire.WaitGo(ctx, child), wire.ErrClosed)
	})
	t.Run("take leaves what is not go", func(t *testing.T) {
		parent, child := pair(t)
		write(t, parent, "main\n")
		assert.False(t, wire.TakeGo(child))
		var me *wire.MessageError
		assert.ErrorAs(t, wire.WaitGo(ctx, child), &me, "the message is still there, and it is not go")
	})
	t.Run("garbage", func(t *testing.T) {
		parent, child := pair(t)
		write(t, parent, "gone fishing\n")
		var me *wire.MessageError
		assert.ErrorAs(t, wire.WaitGo(ctx, child), &me)
	})
	t.Run("canceled", func(t *testing.T) {
		_, child := pair(t)
		c, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		defer cancel()
		assert.ErrorIs(t, wire.WaitGo(c, child), context.DeadlineExceeded)
	})
}

// TestAfterHandOver: the messages after the hand-over, both ways, read
// one at a time even when they arrive together, garbage named as such.
func TestAfterHandOver(t *testing.T) {
	parent, child, err := wire.Pair()
	require.NoError(t, err)
	defer parent.Close()
	defer child.Close()
	require.NoError(t, wire.Upgraded(child))
	require.NoError(t, wire.AskRollback(child, "smoke test\nfailed"))
	_, err = child.Write([]byte("bogus\n"))
	require.NoError(t, err)
	require.NoError(t, wire.Retiring(child))
	l := wire.NewLines(parent)
	m, err := l.Next(t.Context())
	require.NoError(t, err)
	require.Equal(t, wire.After{Kind: "upgraded"}, m)
	m, err = l.Next(t.Context())
	require.NoError(t, err)
	require.Equal(t, wire.After{Kind: "rollback", Reason: "smoke test failed"}, m)
	_, err = l.Next(t.Context())
	var me *wire.MessageError
	require.ErrorAs(t, err, &me)
	m, err = l.Next(t.Context())
	require.NoError(t, err)
	require.Equal(t, "retiring", m.Kind)

	require.NoError(t, wire.Retire(parent))
	m, err = wire.NewLines(child).Next(t.Context())
	require.NoError(t, err)
	require.Equal(t, "retire", m.Kind)
	child.Close()
	_, err = l.Next(t.Context())
	require.ErrorIs(t, err, wire.ErrClosed)
}
