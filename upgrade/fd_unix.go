//go:build unix

package upgrade

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// closeFD closes a raw descriptor.
func closeFD(fd int) { syscall.Close(fd) }

// openRead opens path for reading, close-on-exec, in a file the runtime's
// poller is never asked about. os.Open asks for every file it opens: a
// regular file is made non-blocking, refused by epoll and made blocking
// again, four system calls on the way to every upgrade. A descriptor
// opened blocking is wrapped by os.NewFile as it is.
func openRead(path string) (*os.File, error) {
	for {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: path, Err: err}
		}
		return os.NewFile(uintptr(fd), path), nil
	}
}
