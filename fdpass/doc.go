// Package fdpass is systemd's socket activation for any program: a process
// hands named sockets and files to a program it starts, and the program
// adopts them by name.
//
// # The format
//
// The files are descriptors 3, 4, 5, ... in order, described in the
// program's environment:
//
//	LISTEN_FDS=2
//	LISTEN_FDNAMES=web:metrics
//	LISTEN_PID=4312
//
// Names have no ':' and are at most 255 bytes; LISTEN_PID is the program's
// own PID, so that a program that inherits the variables by accident (a
// child of the program) ignores them. It is the format of systemd's
// socket units (FileDescriptorName=), of sd_listen_fds(3) and of
// go-systemd's activation package, and this package speaks it both ways.
//
// # Adopting
//
// [Inherit] reads and unsets the variables, checks that every descriptor
// they describe is open and marks each close-on-exec, so that programs
// this one starts inherit none. Sockets are then taken by name with
// [Inherited.Listener] and [Inherited.PacketConn], or by the address they
// are bound to with [Inherited.ListenerAt] and [Inherited.PacketConnAt]
// (systemd names every socket of a unit after the unit), and any file with
// [Inherited.File]; each is checked to be of the kind asked for.
// [Inherited.CloseUnclaimed] closes the rest. It is stricter than
// go-systemd's activation package: a malformed variable or a descriptor
// that is not open is an error wrapping [ErrMalformed] (where go-systemd
// would hand out whatever sits at those numbers), asking for a UDP socket
// as a listener is an error, and a unix socket's path is never unlinked.
// LISTEN_PID may be absent, as a parent that cannot set it leaves it.
//
// # Handing over
//
// [Start] starts an [os/exec.Cmd] with sockets and files in that format,
// LISTEN_PID included, without the trap of (*net.TCPListener).File, which
// switches the caller's own socket into blocking mode.
//
// # Example
//
//	// In the parent:
//	ln, _ := net.Listen("tcp", ":8080")
//	cmd := exec.Command("./server")
//	err := fdpass.Start(cmd, fdpass.Named{Name: "web", Conn: ln.(*net.TCPListener)})
//
//	// In ./server:
//	in, err := fdpass.Inherit()
//	ln, err := in.Listener("web", "tcp")
//	in.CloseUnclaimed()
package fdpass
