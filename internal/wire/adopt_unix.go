//go:build unix

package wire

import (
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// tableflipPipes reports whether fds 3 and 4 are pipes, as a tableflip
// parent passes them.
func tableflipPipes() bool {
	for _, fd := range []int{3, 4} {
		var st unix.Stat_t
		if unix.Fstat(fd, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
			return false
		}
	}
	return true
}

// fdReader reads a descriptor without wrapping it in an *os.File, which
// would take ownership of it and start the runtime's poller. A tableflip
// parent's pipe is non-blocking (Go makes its pipes so) and its names may
// not be written yet: Read waits for them with poll, up to tableflipWait.
type fdReader int

// tableflipWait bounds the wait for a tableflip parent's names; tableflip
// itself gives up on a child after a minute by default.
const tableflipWait = time.Minute

func (r fdReader) Read(p []byte) (int, error) {
	deadline := time.Now().Add(tableflipWait)
	for {
		n, err := unix.Read(int(r), p)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			left := time.Until(deadline)
			if left <= 0 {
				return 0, fmt.Errorf("nothing from the parent within %v", tableflipWait)
			}
			fds := []unix.PollFd{{Fd: int32(r), Events: unix.POLLIN}}
			if _, err := unix.Poll(fds, int(left/time.Millisecond)+1); err != nil && err != unix.EINTR {
				return 0, os.NewSyscallError("poll", err)
			}
			continue
		case err != nil:
			return 0, os.NewSyscallError("read", err)
		case n == 0 && len(p) > 0:
			return 0, io.EOF
		}
		return n, nil
	}
}
