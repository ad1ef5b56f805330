//go:build linux

package readiness

import (
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// oobSize fits the sender's credentials and some descriptors, which are
// closed.
var oobSize = unix.CmsgSpace(unix.SizeofUcred) + unix.CmsgSpace(16*4)

// passCred asks the kernel to attach the sender's credentials to every
// datagram received on c.
func passCred(c *net.UnixConn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1)
	}); err != nil {
		return err
	}
	return os.NewSyscallError("setsockopt SO_PASSCRED", serr)
}

// sender returns the sending PID from a datagram's control messages (0 if
// absent), and closes any descriptors that came along.
func sender(oob []byte) (pid int) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0
	}
	for i := range msgs {
		m := &msgs[i]
		if m.Header.Level != unix.SOL_SOCKET {
			continue
		}
		switch m.Header.Type {
		case unix.SCM_RIGHTS:
			fds, _ := unix.ParseUnixRights(m)
			for _, fd := range fds {
				unix.Close(fd)
			}
		case unix.SCM_CREDENTIALS:
			if c, err := unix.ParseUnixCredentials(m); err == nil {
				pid = int(c.Pid)
			}
		}
	}
	return pid
}
