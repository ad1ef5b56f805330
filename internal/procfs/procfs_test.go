//go:build linux

package procfs

import (
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestChildrenAndState(t *testing.T) {
	require.True(t, Available())
	assert.Contains(t, "RS", string(State(os.Getpid())))
	before, ok := Reaped(os.Getpid())
	require.True(t, ok)
	cmd := exec.Command("sleep", "0.2")
	require.NoError(t, cmd.Start())
	assert.True(t, Children(os.Getpid())[cmd.Process.Pid])
	require.Eventually(t, func() bool { return State(cmd.Process.Pid) == 'Z' }, 5*time.Second, time.Millisecond, "exited, not reaped: a zombie")
	require.NoError(t, cmd.Wait())
	assert.Zero(t, State(cmd.Process.Pid), "reaped: gone")
	assert.False(t, Children(os.Getpid())[cmd.Process.Pid])
	after, ok := Reaped(os.Getpid())
	require.True(t, ok)
	assert.Greater(t, after, before, "the reaped child's page faults are counted")
	_, ok = Reaped(cmd.Process.Pid)
	assert.False(t, ok, "no such process")
}
