//go:build unix

package upgrade

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReadEnvFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.env")
	require.NoError(t, os.WriteFile(path, []byte("# comment\n\nA=1\nexport B = two words \nC=\"quoted\"\nD='single'\nE=\nF=a=b\n"), 0o644))
	env, err := readEnvFile(path)
	require.NoError(t, err)
	assert.Equal(t, []string{"A=1", "B=two words", "C=quoted", "D=single", "E=", "F=a=b"}, env)

	for _, bad := range []string{"novalue\n", "=1\n", "A B=1\n"} {
		require.NoError(t, os.WriteFile(path, []byte(bad), 0o644))
		_, err := readEnvFile(path)
		assert.ErrorContains(t, err, "line 1: want KEY=VALUE", bad)
	}
	_, err = readEnvFile(filepath.Join(t.TempDir(), "missing"))
	assert.ErrorContains(t, err, "environment file")
}

func TestMergeEnv(t *testing.T) {
	assert.Equal(t, []string{"PATH=/bin", "B=1", "A=2"}, mergeEnv([]string{"A=0", "PATH=/bin"}, []string{"A=1", "B=1", "A=2"}))
	assert.Equal(t, []string{"X=1"}, mergeEnv([]string{"X=1"}, nil))
}
