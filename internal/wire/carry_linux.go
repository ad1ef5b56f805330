package wire

import (
	"os"

	"golang.org/x/sys/unix"
)

// carryFile is a memfd: memory no other process can open.
func carryFile() (*os.File, error) {
	fd, err := unix.MemfdCreate("handoff-carry", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("memfd_create", err)
	}
	return os.NewFile(uintptr(fd), "handoff-carry"), nil
}
