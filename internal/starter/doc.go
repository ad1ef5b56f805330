// Package starter starts and watches a systemd-style program: one that
// takes its sockets as socket activation hands them (LISTEN_FDS,
// LISTEN_FDNAMES, LISTEN_PID — see package fdpass) and says it is ready
// with sd_notify's READY=1. It is what `handoff run` starts its workers
// with, and what package upgrade starts a next generation with that is not
// a handoff program (Options.ForeignChild).
//
// A Process gets a private NOTIFY_SOCKET, in a directory only this user
// can reach, on which only datagrams from the program's own PID count
// (where the kernel tells); its READY=1 closes [Process.Ready], its last
// STATUS= is kept, and with TailStderr the last 4 KiB of its standard
// error too, to say why it failed. [Process.Stop] sends SIGTERM, then
// SIGKILL after a grace period.
package starter
