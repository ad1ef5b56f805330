//go:build linux

package integration_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/handoff-go/handoff/internal/harness"
)

// TestSystemdUnits checks the unit files in examples/systemd with
// systemd-analyze verify (the programs they run replaced by /bin/true,
// which verify requires to exist). On systemd older than 253 the two
// notify-reload settings are the only complaints allowed.
func TestSystemdUnits(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		requireTool(t, "systemd-analyze not installed (Debian package systemd; .ci/run installs it)")
	}
	root, err := harness.ModuleRoot()
	require.NoError(t, err)
	units, err := filepath.Glob(filepath.Join(root, "examples", "systemd", "*.service"))
	require.NoError(t, err)
	require.Len(t, units, 3)
	dir := t.TempDir()
	for _, unit := range units {
		t.Run(filepath.Base(unit), func(t *testing.T) {
			b, err := os.ReadFile(unit)
			require.NoError(t, err)
			b = bytes.ReplaceAll(b, []byte("/usr/local/bin/httpserver"), []byte("/bin/true"))
			b = bytes.ReplaceAll(b, []byte("/usr/local/bin/handoff"), []byte("/bin/true"))
			path := filepath.Join(dir, filepath.Base(unit))
			require.NoError(t, os.WriteFile(path, b, 0o644))
			out, err := exec.Command("systemd-analyze", "verify", path).CombinedOutput()
			require.NoError(t, err, "%s", out)
			for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				if line == "" || strings.Contains(line, "notify-reload") || strings.Contains(line, "'ReloadSignal'") {
					continue // systemd < 253 does not know them yet
				}
				assert.Fail(t, "systemd-analyze complains", "%s", line)
			}
		})
	}
}
