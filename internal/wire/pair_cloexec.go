//go:build linux || freebsd || netbsd || openbsd || dragonfly

package wire

import (
	"os"

	"golang.org/x/sys/unix"
)

// socketpair makes a close-on-exec, non-blocking stream socket pair in one
// call, so no fork can inherit it.
func socketpair() ([2]int, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return fds, os.NewSyscallError("socketpair", err)
	}
	return fds, nil
}
