//go:build unix

package supervisor

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/handoff-go/handoff/readiness"
)

// TestSupervisorNotifiesSystemd: under systemd the supervisor, whose PID
// never changes, is the main process and reports start, upgrades (good and
// failed) and stop itself; its workers' own notifications go to it, not to
// systemd.
func TestSupervisorNotifiesSystemd(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify")
	r, err := readiness.Listen(path)
	require.NoError(t, err)
	defer r.Close()
	t.Setenv("NOTIFY_SOCKET", path)
	next := func() []string {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		n, err := r.Receive(ctx)
		require.NoError(t, err)
		if n.PID != 0 { // 0: the platform does not tell
			require.Equal(t, os.Getpid(), n.PID, "only the supervisor talks to systemd: %q", n.Lines)
		}
		return n.Lines
	}

	h := start(t, nil)
	first := h.s.Status().WorkerPID
	assert.Equal(t, []string{"READY=1", fmt.Sprintf("STATUS=serving: worker %d", first)}, next())

	res := h.s.Upgrade(t.Context())
	require.True(t, res.OK, res.Error)
	lines := next()
	require.Len(t, lines, 3)
	assert.Equal(t, "RELOADING=1", lines[0])
	assert.True(t, strings.HasPrefix(lines[1], "MONOTONIC_USEC="), lines[1])
	assert.Equal(t, "STATUS=upgrading: starting a new worker", lines[2])
	assert.Equal(t, []string{"READY=1", fmt.Sprintf("STATUS=serving: worker %d (upgraded from worker %d)", res.NewPID, first)}, next())

	h.setMode("exit3")
	res = h.s.Upgrade(t.Context())
	require.False(t, res.OK)
	assert.Equal(t, "RELOADING=1", next()[0])
	lines = next()
	require.Len(t, lines, 2)
	assert.Equal(t, "READY=1", lines[0])
	assert.True(t, strings.HasPrefix(lines[1], "STATUS=upgrade failed: "), lines[1])

	h.setMode("ready")
	assert.NoError(t, h.end())
	assert.Equal(t, []string{"STOPPING=1", "STATUS=stopping: draining worker"}, next())
}
