//go:build unix && !linux

package readiness

import (
	"net"

	"golang.org/x/sys/unix"
)

// oobSize fits some descriptors, which are closed.
var oobSize = unix.CmsgSpace(16 * 4)

// passCred does nothing: this platform does not tell who sent a datagram.
func passCred(c *net.UnixConn) error { return nil }

// sender closes any descriptors that came along; it cannot tell the PID.
func sender(oob []byte) (pid int) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0
	}
	for i := range msgs {
		if msgs[i].Header.Level == unix.SOL_SOCKET && msgs[i].Header.Type == unix.SCM_RIGHTS {
			fds, _ := unix.ParseUnixRights(&msgs[i])
			for _, fd := range fds {
				unix.Close(fd)
			}
		}
	}
	return 0
}
