// Package fdpass moves open files — listening sockets, packet sockets and
// any named [os.File] — from a process into a program it starts, and adopts
// them on the other side.
//
// It speaks systemd's socket-activation format, so a program that works
// under socket activation works under handoff and the other way round.
//
// # The format
//
// A parent places the files at descriptors 3, 4, 5, ... in a stable order
// and describes them in the child's environment:
//
//	LISTEN_FDS=2
//	LISTEN_FDNAMES=tcp/127.0.0.1%3A8080:metrics
//	HANDOFF=v1;control=ready,stderr;gen=4
//
// LISTEN_FDS and LISTEN_FDNAMES are systemd's (names have no ':' and are at
// most 255 bytes). HANDOFF is this package's own: it names the control
// descriptors that follow the listed ones (here fds 5 and 6) and carries a
// few key=value pairs for the caller. LISTEN_PID, when present, must equal
// the receiving process's PID, or the variables are ignored, as systemd
// specifies.
//
// # Sending
//
// [Dup] duplicates a socket or file into a new [os.File] that is safe to put
// in [os/exec.Cmd.ExtraFiles]: unlike [net.TCPListener.File], calling Fd on
// it does not switch the shared socket into blocking mode, so the sending
// process's own listener keeps working. [Handover.Apply] fills in the
// command's ExtraFiles and environment.
//
// # Receiving
//
// [Inherit] reads and unsets the variables, checks every descriptor is open,
// marks each close-on-exec, and returns an [Inherited] set from which
// sockets are taken by name; each is checked to be of the kind asked for.
// Malformed input is reported as an [*EnvError] or [*FDError], never a panic.
// Descriptors nobody takes are closed by [Inherited.CloseUnclaimed]; a unix
// socket's path is never unlinked by this package.
//
// # From tableflip
//
// A process started by a parent built with github.com/cloudflare/tableflip
// v1.2.x ([EnvTableflip] set) is understood too: Inherit reads the names
// tableflip sends on fd 4 and files the descriptors from fd 5 under
// [TableflipName]s, with tableflip's two pipes as control files
// ([TableflipReady], [TableflipParent]); [Inherited.FromTableflip] reports
// it. This is how a tableflip server upgrades into a handoff build.
package fdpass
