package main

import (
	"io"
	"net"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMain lets the tests re-execute this test binary in a role, as the
// command re-executes itself.
func TestMain(m *testing.M) {
	dispatch()
	os.Exit(m.Run())
}

func TestListenAddrDistinct(t *testing.T) {
	seen := make(map[string]bool)
	for i := range maxCount {
		a := listenAddr(i)
		host, port, err := net.SplitHostPort(a)
		require.NoError(t, err)
		assert.Equal(t, "0", port)
		ip := net.ParseIP(host)
		require.NotNil(t, ip, a)
		assert.True(t, ip.IsLoopback(), a)
		assert.False(t, seen[a], "%s twice", a)
		seen[a] = true
	}
}

// TestSamples runs a few real samples of every mechanism and checks what
// they report, and that nothing is left behind.
func TestSamples(t *testing.T) {
	require.NoError(t, becomeSubreaper())
	var h Hygiene
	const n = 3
	points, err := measureLatency(t.Context(), []int{n}, 2, 1, &h, io.Discard)
	require.NoError(t, err)
	require.Len(t, points, 1)
	p := points[0]
	assert.Equal(t, n, p.FDs)
	for name, s := range map[string]Series{"exec": p.Exec, "exec+fds": p.ExecFDs, "handoff": p.Handoff, "tableflip": p.Tableflip, "foreign": p.Foreign} {
		assert.Equal(t, 2, s.N, name)
		assert.Positive(t, s.Min, name)
		assert.False(t, s.ParentKept.Empty(), name)
	}
	// The bare child does not report; the libraries' children hold at
	// least the listeners they adopted.
	assert.True(t, p.Exec.ChildFDs.Empty())
	assert.GreaterOrEqual(t, p.Handoff.ChildFDs.Min, n)
	assert.GreaterOrEqual(t, p.Tableflip.ChildFDs.Min, n)
	assert.GreaterOrEqual(t, p.Foreign.ChildFDs.Min, n)
	for name, s := range map[string]Series{"handoff": p.Handoff, "tableflip": p.Tableflip, "foreign": p.Foreign} {
		require.NotNil(t, s.Phases, name)
		assert.Equal(t, 2, s.Phases.Start.N, name)
	}
	// The floor's parent keeps nothing once its listeners are closed.
	assert.Equal(t, Range{Min: 0, Max: 0, set: true}, p.ExecFDs.ParentKept)

	assert.Equal(t, 15, h.Samples) // (1 warm-up + 2) × 5 mechanisms
	assert.Equal(t, 9, h.Reaped)   // every library child, as subreaper
	assert.Zero(t, h.ChildrenLeft)
	assert.Equal(t, h.DriverFDs.Min, h.DriverFDs.Max, "the driver's descriptors grew")
}
