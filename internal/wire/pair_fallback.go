//go:build unix && !(linux || freebsd || netbsd || openbsd || dragonfly)

package wire

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// socketpair makes a close-on-exec, non-blocking stream socket pair.
// Darwin (and the other unixes here) have no SOCK_CLOEXEC: ForkLock keeps Go's own forks from
// inheriting the pair before CloseOnExec (as the net package does).
func socketpair() ([2]int, error) {
	syscall.ForkLock.RLock()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err == nil {
		unix.CloseOnExec(fds[0])
		unix.CloseOnExec(fds[1])
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return fds, os.NewSyscallError("socketpair", err)
	}
	for _, fd := range fds {
		if err := unix.SetNonblock(fd, true); err != nil {
			unix.Close(fds[0])
			unix.Close(fds[1])
			return fds, os.NewSyscallError("setnonblock", err)
		}
	}
	return fds, nil
}
