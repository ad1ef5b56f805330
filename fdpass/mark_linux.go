package fdpass

import (
	"os"

	"golang.org/x/sys/unix"
)

// markInherited proves that the n descriptors from first on are open and
// marks them close-on-exec, in two system calls whatever n: one poll, in
// which a descriptor that is not open reports POLLNVAL, and one
// close_range. It returns the index of the first that is not open, with
// why; -1 if all are. Where either call is refused (close_range came with
// Linux 5.11), it does what markEach does.
func markInherited(first, n int) (int, error) {
	if n == 0 {
		return -1, nil
	}
	fds := make([]unix.PollFd, n)
	for i := range fds {
		fds[i].Fd = int32(first + i)
	}
	for {
		_, err := unix.Poll(fds, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return markEach(first, n)
		}
		break
	}
	for i, p := range fds {
		if p.Revents&unix.POLLNVAL != 0 {
			return i, os.NewSyscallError("poll", unix.EBADF)
		}
	}
	if unix.CloseRange(uint(first), uint(first+n-1), unix.CLOSE_RANGE_CLOEXEC) != nil {
		return markEach(first, n)
	}
	return -1, nil
}

// dupOnto points descriptor to at what from refers to, close-on-exec.
func dupOnto(from, to int) error { return unix.Dup3(from, to, unix.O_CLOEXEC) }
