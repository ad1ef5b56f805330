//go:build unix

package upgrade

import (
	"os"
)

// restoreStderr makes f this process's standard error (fd 2), replacing
// the pipe to the parent.
func restoreStderr(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var dupErr error
	if err := rc.Control(func(fd uintptr) { dupErr = dupOnto(int(fd), 2) }); err != nil {
		return err
	}
	if dupErr != nil {
		return os.NewSyscallError("dup2", dupErr)
	}
	return nil
}
