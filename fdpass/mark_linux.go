package fdpass

import "golang.org/x/sys/unix"

// markInherited proves that the n descriptors from first on are open and
// marks them close-on-exec, in two system calls whatever n: one poll, in
// which a descriptor that is not open reports POLLNVAL, and one
// close_range. It returns the index of the first that is not open, with
// why; -1 if all are. Where either call is refused (close_range came with
// Linux 5.11), or poll names a descriptor it cannot see, it does what
// markEach does.
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
	for _, p := range fds {
		if p.Revents&unix.POLLNVAL != 0 {
			// Not open, or open with O_PATH, which poll does not see
			// and fcntl does: fcntl decides.
			return markEach(first, n)
		}
	}
	if unix.CloseRange(uint(first), uint(first+n-1), unix.CLOSE_RANGE_CLOEXEC) != nil {
		return markEach(first, n)
	}
	return -1, nil
}
