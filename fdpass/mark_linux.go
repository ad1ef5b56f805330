package fdpass

import "golang.org/x/sys/unix"

// markInherited proves that the n descriptors from first on are open and
// marks them close-on-exec, in three system calls whatever n. The proof
// is F_DUPFD, which copies first onto the lowest free number from first
// on: past the range only if every descriptor in it is open. The copy is
// closed again, and one close_range marks the range. It returns the index
// of the first that is not open, with why; -1 if all are. Where a call is
// refused (close_range came with Linux 5.11; F_DUPFD fails with EMFILE or
// EINVAL at the descriptor limit), or the proof fails, it does what
// markEach does, which names the descriptor that is not open.
//
// The proof replaced a poll of the whole range, in which a descriptor
// that is not open reports POLLNVAL: a thousand sockets' first touch in a
// new process, 0.35–0.5 ms before the sockets could be adopted.
// markSlow is markEach; a seam for tests.
var markSlow = markEach

func markInherited(first, n int) (int, error) {
	if n == 0 {
		return -1, nil
	}
	free, err := unix.FcntlInt(uintptr(first), unix.F_DUPFD_CLOEXEC, first)
	if err != nil {
		return markSlow(first, n) // first is not open, or no number is free
	}
	unix.Close(free)
	if free < first+n {
		return markSlow(first, n)
	}
	if unix.CloseRange(uint(first), uint(first+n-1), unix.CLOSE_RANGE_CLOEXEC) != nil {
		return markSlow(first, n)
	}
	return -1, nil
}
