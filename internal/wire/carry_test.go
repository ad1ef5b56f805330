package wire

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCarryCodec(t *testing.T) {
	in := map[string][]byte{CarryState: []byte("line\nwith\x00bytes"), CarryTicketKeys: make([]byte, 64), "empty": {}}
	var b bytes.Buffer
	require.NoError(t, encodeCarry(&b, in))
	out, err := decodeCarry(&b)
	require.NoError(t, err)
	assert.Equal(t, in, out)

	for _, bad := range []string{"state\n", "state x\n", "state -1\n", "state 5\nabc", "a 1\nxa 1\ny", "state 99999999999\n"} {
		_, err := decodeCarry(strings.NewReader(bad))
		assert.Error(t, err, "%q", bad)
	}
	assert.Error(t, encodeCarry(&b, map[string][]byte{"bad name": nil}))
	assert.Error(t, encodeCarry(&b, map[string][]byte{"big": make([]byte, MaxCarry+1)}))
}
