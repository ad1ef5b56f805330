//go:build unix

package wire

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCarryFile(t *testing.T) {
	in := map[string][]byte{CarryState: []byte("sessions: 3")}
	f, err := WriteCarry(in)
	require.NoError(t, err)
	out, err := ReadCarry(f)
	require.NoError(t, err)
	assert.Equal(t, in, out)
}
