// Package fds duplicates the descriptors behind sockets and files for a
// process about to be started, as raw close-on-exec descriptors.
package fds

import (
	"os"
	"syscall"
)

// Dup duplicates the descriptor behind c (a listener, a packet conn, an
// *os.File) as a raw close-on-exec descriptor, sharing c's open file
// description: its mode (non-blocking, for Go's sockets) is left alone.
// Unlike an *os.File, the copy is not registered with the runtime's poller,
// which would cost about 3 µs a descriptor. The caller closes it with
// syscall.Close.
func Dup(c syscall.Conn) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return -1, err
	}
	nfd := -1
	var dupErr error
	if err := rc.Control(func(fd uintptr) { nfd, dupErr = dupCloexec(int(fd)) }); err != nil {
		return -1, err
	}
	if dupErr != nil {
		return -1, os.NewSyscallError("fcntl", dupErr)
	}
	return nfd, nil
}
