// Package wire is the protocol between generations of a handoff program:
// how a parent describes what it hands over, and what the two say to each
// other until the child has taken over. It is internal so that it can grow
// without breaking anyone's build; it is versioned because two builds of
// different versions must still hand over to each other, in both
// directions (an upgrade and its rollback).
//
// # What the child is handed
//
// The named files (sockets, files) at descriptors 3.., described in
// systemd's socket-activation format, so that a systemd-style program
// understands them too; then control files, and meta pairs, described by
// one variable of handoff's own:
//
//	LISTEN_FDS=2
//	LISTEN_FDNAMES=tcp/127.0.0.1%3A8080:file/lock
//	HANDOFF=v1;control=ready,stderr,stderr-pipe,elder-4312;gen=4;go=1;ppid=4400;proto=2
//
// Names are [Key]s: the network and the address the program asked for, or
// "file/" and the name it gave. The control files follow the named ones
// (fds 5.. here): [CtlReady], the readiness channel (a stream socket
// pair); [CtlStderr], the parent's own stderr; [CtlStderrPipe]; and one
// [CtlElderPrefix]<pid> per older generation still draining.
//
// # The readiness channel
//
// One line per message, each side waiting for the other's answer:
//
//	child:  ready | failed: <reason>
//	parent: go                       (at once, or after a probation)
//	child:  live  | failed: <reason> (its pidfile written)
//	parent: main                     (only with notify=1: systemd was told MAINPID)
//
// EOF on the channel means the other side exited: that is how a child
// learns its parent is gone, without polling.
//
// # Versions
//
// The first field of HANDOFF is "v1" and stays so (a build refuses any
// other). A parent announces the highest protocol version it speaks as the
// meta pair proto=N (none means 1); the child speaks to it only in what
// that version knows. Only the parent announces: what a newer parent
// offers, it offers so that an older child passes it by — a meta pair the
// child ignores, a control file the child closes at once (upgrade does) —
// and a child takes it up only in a way that version defines (a reply an
// older child would never send). So builds of different versions hand
// over with what both know, in either direction.
//
// # From tableflip
//
// A process started by a parent built with github.com/cloudflare/tableflip
// v1.2.x is recognised too (see [EnvTableflip]), so that a tableflip
// server can upgrade into a handoff build.
package wire
