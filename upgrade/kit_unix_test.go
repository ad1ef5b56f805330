//go:build unix

package upgrade

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func kitOf(u *Upgrader) *kit {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.kit
}

// rawFD returns f's descriptor without changing its mode.
func rawFD(t *testing.T, f *os.File) int {
	t.Helper()
	fd, err := ownFD(f)
	require.NoError(t, err)
	return fd
}

// closedFile is what os.File.Fd returns once the file is closed.
const closedFile = ^uintptr(0)

// TestKit: a generation holds the next upgrade's kit from Ready on, every
// descriptor of it close-on-exec (a program the server starts meanwhile
// inherits none); an upgrade starts its child with that kit, not a new
// one; a failed upgrade leaves a new one for the next try; Stop closes it.
func TestKit(t *testing.T) {
	u := newTestUpgrader(t, "crash", Options{})
	ln, err := u.Listen(t.Context(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	assert.Nil(t, kitOf(u), "none before Ready")
	require.NoError(t, u.Ready())
	k := kitOf(u)
	require.NotNil(t, k, "Ready makes one")
	// Not by Fd, which would make the non-blocking files blocking.
	fds := []int{k.stdin, k.stderrW, rawFD(t, k.stderrR), rawFD(t, k.ctl), k.childCtl}
	if k.conns != nil {
		fds = append(fds, k.childConns)
	}
	for _, fd := range fds {
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		require.NoError(t, err, "fd %d", fd)
		assert.NotZero(t, flags&unix.FD_CLOEXEC, "fd %d is close-on-exec", fd)
	}

	ctl := k.ctl
	var ce *ChildError
	require.ErrorAs(t, u.Upgrade(t.Context()), &ce)
	assert.Equal(t, StageExited, ce.Stage)
	assert.Equal(t, closedFile, ctl.Fd(), "the failed child's channel, the kit's, is closed")
	next := kitOf(u)
	require.NotNil(t, next, "a failed upgrade leaves a kit for the next try")
	assert.NotSame(t, k, next)

	u.Stop()
	assert.Nil(t, kitOf(u), "Stop drops the kit")
	assert.Equal(t, closedFile, next.ctl.Fd(), "and closes it")
	assert.Equal(t, closedFile, next.stderrR.Fd())
}

// TestKitUsed: the child is started with the kit Ready made: the
// readiness channel to the successor is the kit's, and a generation that
// handed over makes no other.
func TestKitUsed(t *testing.T) {
	u := newTestUpgrader(t, "ready", Options{})
	ln, err := u.Listen(t.Context(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	require.NoError(t, u.Ready())
	k := kitOf(u)
	require.NotNil(t, k)
	ctl := k.ctl
	require.NoError(t, u.Upgrade(t.Context()))
	u.mu.Lock()
	succ := u.successor
	u.mu.Unlock()
	require.NotNil(t, succ)
	assert.Same(t, ctl, succ.ctl, "the successor's channel is the kit's")
	assert.Nil(t, kitOf(u), "none after the hand-over")
	requireExit(t, u)
	u.stockKit() // as a settling or a late Ready would
	assert.Nil(t, kitOf(u), "a generation that handed over makes none")
}

// aliveParent is a parent that exits when gone is closed.
type aliveParent struct {
	parent
	c chan struct{}
}

func (p aliveParent) gone() <-chan struct{} { return p.c }

// TestKitSettled: a new generation makes its kit once its parent has
// exited, not while it takes over, and none if it is stopped first.
func TestKitSettled(t *testing.T) {
	c := make(chan struct{})
	u := &Upgrader{parent: aliveParent{c: c}, stopC: make(chan struct{}), phase: live}
	done := make(chan struct{})
	go func() {
		u.settleLater()
		close(done)
	}()
	time.Sleep(20 * time.Millisecond)
	assert.Nil(t, kitOf(u), "none while the parent lives")
	close(c)
	<-done
	require.NotNil(t, kitOf(u), "made once it has exited")
	u.dropKit()

	stopped := &Upgrader{parent: aliveParent{c: make(chan struct{})}, stopC: make(chan struct{}), phase: live}
	close(stopped.stopC)
	stopped.settleLater()
	assert.Nil(t, kitOf(stopped), "none once stopped")
}
