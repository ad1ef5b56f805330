// Package supervisor runs a program in any language under a process with a
// stable PID, and upgrades it without dropping a connection: the
// supervisor binds the sockets once, starts the program (the worker) with
// them as systemd-style inherited descriptors, and on request starts a new
// worker on the same sockets, waits until it is ready, and only then stops
// the old one. It is the engine of `handoff run`.
//
// # The worker's side
//
// A worker finds its sockets the way a socket-activated systemd service
// does: descriptors 3.. in the order of [Config.Listen], LISTEN_FDS,
// LISTEN_FDNAMES (names like "tcp/127.0.0.1%3A8080": the network, '/', and
// the address with '%' and ':' escaped) and LISTEN_PID, which names the
// worker itself: it is started through /bin/sh, which sets LISTEN_PID and
// execs the program in its own place (package internal/starter, which
// package upgrade starts its foreign children with too). It says it is
// ready by sending a datagram holding the line "READY=1" to the unix
// socket named by NOTIFY_SOCKET, as sd_notify(3) does; on Linux only
// datagrams sent by the worker's own PID count. A program that cannot do
// that is ready when it has stayed alive for [Config.ReadyDelay]. On
// SIGTERM a worker should stop accepting, finish what it has accepted and
// exit 0.
//
// # Upgrades and crashes
//
// [Supervisor.Upgrade] (also SIGHUP, SIGUSR2, or the control socket) runs
// at most one upgrade at a time; a second request is refused at once (its
// verdict has Refused and Error set). A worker that dies on its own is
// restarted with exponential backoff, or ends the supervisor
// ([Config.OnCrash]).
//
// # Use
//
// [New] checks a [Config]; [Supervisor.Run] binds, starts and supervises
// until its context ends or SIGTERM/SIGINT arrives. A Supervisor runs once
// and may not be reused after Run returns. Its methods are safe for
// concurrent use. Unix only: elsewhere [New] returns [ErrNotSupported].
package supervisor
