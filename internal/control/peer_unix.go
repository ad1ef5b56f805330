//go:build linux || darwin || freebsd

package control

import (
	"fmt"
	"os"
)

// admit lets in a client of uid if it is this process's UID or root.
func admit(uid uint32) error {
	if uid != 0 && int(uid) != os.Getuid() {
		return fmt.Errorf("control: permission denied: client UID %d is neither this process's (%d) nor root", uid, os.Getuid())
	}
	return nil
}
