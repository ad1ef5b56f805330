//go:build unix

package upgrade

import "syscall"

// closeFD closes a raw descriptor.
func closeFD(fd int) { syscall.Close(fd) }
