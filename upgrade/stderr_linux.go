//go:build linux

package upgrade

import "golang.org/x/sys/unix"

func dupOnto(oldfd, newfd int) error { return unix.Dup3(oldfd, newfd, 0) }

// pipeCloexec makes a close-on-exec pipe in one call.
func pipeCloexec(p []int) error { return unix.Pipe2(p, unix.O_CLOEXEC) }
