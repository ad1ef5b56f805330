package fdpass

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// TestMarkInherited: every descriptor of the range is marked close-on-exec,
// and one that is not open is named, in both ways of doing it.
func TestMarkInherited(t *testing.T) {
	for name, mark := range map[string]func(int, int) (int, error){"poll+close_range": markInherited, "fcntl each": markEach} {
		t.Run(name, func(t *testing.T) {
			var p [2]int
			require.NoError(t, unix.Pipe(p[:]))
			defer unix.Close(p[0])
			defer unix.Close(p[1])
			const first, n = 900, 4
			for i := range n {
				require.NoError(t, unix.Dup3(p[i%2], first+i, 0)) // without close-on-exec
				defer unix.Close(first + i)
			}
			bad, err := mark(first, n)
			require.NoError(t, err)
			assert.Equal(t, -1, bad)
			for i := range n {
				flags, err := unix.FcntlInt(uintptr(first+i), unix.F_GETFD, 0)
				require.NoError(t, err)
				assert.Equal(t, unix.FD_CLOEXEC, flags&unix.FD_CLOEXEC, "descriptor %d", first+i)
			}
			unix.Close(first + 2)
			bad, err = mark(first, n)
			assert.Equal(t, 2, bad, "the one not open")
			assert.ErrorIs(t, err, unix.EBADF)
		})
	}
}
