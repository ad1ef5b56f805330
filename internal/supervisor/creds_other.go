//go:build unix && !linux

package supervisor

import (
	"net"

	"golang.org/x/sys/unix"
)

// checkSender: this platform does not tell who sent a notify datagram, so
// any process that can reach the socket (in a 0700 directory) counts.
const checkSender = false

// oobSize fits some descriptors, which are closed.
var oobSize = unix.CmsgSpace(16 * 4)

func passCred(c *net.UnixConn) error { return nil }

// sender closes any descriptors that came along; it cannot tell the PID.
func sender(oob []byte) (pid int, ok bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0, false
	}
	for i := range msgs {
		if msgs[i].Header.Level == unix.SOL_SOCKET && msgs[i].Header.Type == unix.SCM_RIGHTS {
			fds, _ := unix.ParseUnixRights(&msgs[i])
			for _, fd := range fds {
				unix.Close(fd)
			}
		}
	}
	return 0, false
}
