//go:build linux

package integration_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/handoff-go/handoff/internal/harness"
)

// buildTestdata builds the program in testdata/name, a module of its own
// so that what it depends on (tableflip, go-systemd) stays out of
// handoff's dependency graph.
func buildTestdata(t *testing.T, name string) string {
	t.Helper()
	root, err := harness.ModuleRoot()
	require.NoError(t, err)
	out := filepath.Join(t.TempDir(), name)
	cmd := exec.Command("go", "build", "-o", out, ".")
	cmd.Dir = filepath.Join(root, "integration_test", "testdata", name)
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "go build %s:\n%s", name, b)
	return out
}

// TestMigrateFromTableflip: a running tableflip server whose binary is
// replaced by a handoff build upgrades into it with tableflip's own
// SIGHUP; the handoff build then upgrades on with handoff's protocol.
// Nothing fails under load, and each old process is gone.
func TestMigrateFromTableflip(t *testing.T) {
	tf := buildTestdata(t, "tfserver")
	s := startServer(t, tf, "")
	p0, err := s.WaitPID(t.Context(), 0)
	require.NoError(t, err)
	s.requireAnswer("tableflip", p0)
	l := startLoad(t, s.addr, 16)
	time.Sleep(300 * time.Millisecond)

	// tableflip starts the handoff build, which takes the listener by
	// tableflip's name for it and says ready tableflip's way.
	p1, _ := s.upgrade(bins.v2, syscall.SIGHUP)
	require.NotEqual(t, p0, p1)
	s.requireAnswer("v2", p1)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	require.NoError(t, harness.WaitGone(ctx, p0), "the tableflip process exits after its drain")
	time.Sleep(300 * time.Millisecond)

	// From here on handoff's own protocol, twice.
	p2, _ := s.upgrade(bins.v1, syscall.SIGHUP)
	s.requireAnswer("v1", p2)
	time.Sleep(300 * time.Millisecond)
	p3, _ := s.upgrade(bins.v2, syscall.SIGUSR2)
	s.requireAnswer("v2", p3)
	require.NoError(t, harness.WaitGone(ctx, p2))

	requests, failed := l.stop(t)
	assert.Positive(t, requests)
	assert.Zero(t, failed, "failed requests across tableflip -> handoff -> handoff -> handoff")
	s.requireOneGeneration(p3)
	assert.Contains(t, s.Log(), "generation=2", "the first handoff build counts itself the second generation")
}
