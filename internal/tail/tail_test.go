package tail

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestBuffer(t *testing.T) {
	b := New(8)
	b.Write([]byte("abc"))
	assert.Equal(t, "abc", b.String())
	b.Write([]byte("defgh"))
	assert.Equal(t, "abcdefgh", b.String())
	b.Write([]byte("ij"))
	assert.Equal(t, "cdefghij", b.String())
	b.Write([]byte(strings.Repeat("x", 20) + "12345678"))
	assert.Equal(t, "12345678", b.String())
}
