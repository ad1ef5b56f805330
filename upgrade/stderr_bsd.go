//go:build unix && !linux

package upgrade

import (
	"syscall"

	"golang.org/x/sys/unix"
)

func dupOnto(oldfd, newfd int) error { return unix.Dup2(oldfd, newfd) }

// pipeCloexec makes a close-on-exec pipe; under the fork lock, since not
// every system here has pipe2, so that no process started meanwhile
// inherits it.
func pipeCloexec(p []int) error {
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	if err := syscall.Pipe(p); err != nil {
		return err
	}
	syscall.CloseOnExec(p[0])
	syscall.CloseOnExec(p[1])
	return nil
}
