//go:build unix

package upgrade

import (
	"net"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/handoff-go/handoff/pidfile"
)

// TestForeignChild: a child that is not a handoff program sees LISTEN_PID
// equal to its own PID, LISTEN_FDS and no handoff variable (the helper
// exits 7 otherwise, which fails the upgrade), says READY=1 with
// sd_notify, and gets the pidfile.
func TestForeignChild(t *testing.T) {
	pidPath := filepath.Join(t.TempDir(), "app.pid")
	before := 0
	if runtime.GOOS == "linux" {
		// The runtime's network poller opens its descriptors once, at the
		// first socket: let that happen before the count, so that the test
		// also holds when it runs alone.
		warm, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		warm.Close()
		before = countFDs(t)
	}
	u := newTestUpgrader(t, "systemd", Options{PIDFile: pidPath, ForeignChild: true}, envFiles+"=2")
	a, err := u.Listen(t.Context(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer a.Close()
	b, err := u.ListenPacket(t.Context(), "udp", "127.0.0.1:0")
	require.NoError(t, err)
	defer b.Close()
	require.NoError(t, u.Ready())

	err = u.Upgrade(t.Context())
	require.NoError(t, err, "%v", err)
	child, err := pidfile.Read(pidPath)
	require.NoError(t, err)
	require.NotEqual(t, syscall.Getpid(), child, "the pidfile names the foreign child")
	require.NoError(t, syscall.Kill(child, syscall.SIGTERM))
	deadline := time.Now().Add(10 * time.Second)
	for !gone(child) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	require.True(t, gone(child))
	if runtime.GOOS == "linux" {
		u.Stop()
		closeSuccessor(u)
		a.Close()
		b.Close()
		// The relay's socket pair and notify socket are closed once it ends.
		deadline := time.Now().Add(5 * time.Second)
		for countFDs(t) > before && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		assert.LessOrEqual(t, countFDs(t), before, "descriptors left behind")
	}
}

// TestForeignChildFails: a foreign child that exits before READY=1 fails
// the upgrade with its exit status; the pidfile still names this process.
func TestForeignChildFails(t *testing.T) {
	pidPath := filepath.Join(t.TempDir(), "app.pid")
	u := newTestUpgrader(t, "crash", Options{PIDFile: pidPath, ForeignChild: true})
	ln, err := u.Listen(t.Context(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	require.NoError(t, u.Ready())
	err = u.Upgrade(t.Context())
	var ce *ChildError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, StageExited, ce.Stage)
	assert.Equal(t, 3, ce.ProcessState.ExitCode())
	pid, err := pidfile.Read(pidPath)
	require.NoError(t, err)
	assert.Equal(t, syscall.Getpid(), pid)
}

// TestForeignChildStatus: a foreign child's last STATUS= before it exits
// is its reason, carried in the ChildError. The helper, told to expect 5
// descriptors and given 1, says so in a STATUS= line and exits 7.
func TestForeignChildStatus(t *testing.T) {
	u := newTestUpgrader(t, "systemd", Options{ForeignChild: true}, envFiles+"=5")
	ln, err := u.Listen(t.Context(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	require.NoError(t, u.Ready())
	err = u.Upgrade(t.Context())
	var ce *ChildError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, StageExited, ce.Stage)
	assert.Equal(t, 7, ce.ProcessState.ExitCode())
	assert.Equal(t, "LISTEN_FDS=1, want 5", ce.Status)
	assert.Contains(t, err.Error(), "(its last status: LISTEN_FDS=1, want 5)")
}
