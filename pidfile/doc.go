// Package pidfile keeps a pidfile that always names the live process.
//
// A pidfile is what outside tooling uses to find a daemon: `kill -USR2 $(cat app.pid)`,
// systemd's PIDFile=, start-stop-daemon --pidfile. During a hand-over two processes of the
// same program are alive at once, so the file must never be seen half-written or empty, and
// it should not go on naming a process that has exited. This package provides four functions
// for that: [Check], [Write], [Read] and [Remove].
//
// # Format
//
// The file holds the PID in decimal followed by a newline ("4312\n"), mode 0644 whatever the
// umask. [Read] accepts exactly that, with any run of trailing spaces, tabs, carriage returns
// and newlines; anything else (an empty file, a sign, leading zeros, leading whitespace, a
// second field, a PID outside 1..2147483647, more than 64 bytes) is reported as an error
// wrapping [ErrMalformed].
//
// # Atomic replacement
//
// [Write] creates a temporary file named ".<base>.tmp-<random>" in the pidfile's own directory,
// writes the PID, sets the mode and renames it over the pidfile. A reader therefore sees either
// the previous content or the new one, never a mix. Nothing is fsynced: after a machine crash
// the process a pidfile names is gone whatever the file says (the next Write replaces a stale
// file), and an fsync would lengthen every upgrade. On any failure before the rename the
// temporary file is removed and the previous pidfile is left as it was. A symbolic link at
// the pidfile's path is replaced by a regular file; its target is never written.
//
// # Hand-over
//
// The new process calls [Check] early (at start-up, so a bad path fails before any work is
// done) and [Write] once it is ready to serve. The old process calls [Remove] with its own
// PID as it exits. After a successful hand-over the file already names the new process, so
// Remove returns an error wrapping [ErrNotOwner] and leaves it alone; callers that expect a
// successor should treat that as success. If no successor took over, Remove deletes the file,
// so tooling does not signal a PID that may be reused.
//
// # Concurrency
//
// The package keeps no state: every function may be called from any goroutine, and by any
// number of processes, at any time. Concurrent writers to one path never produce a torn
// file; the last rename wins. [Remove] reads the file and then unlinks it, so it can in
// principle delete a pidfile that another process renamed into place in the few
// microseconds between its last check and the unlink; see Remove for why that is acceptable.
//
// # Platforms
//
// The package works on unix systems (Linux, the BSDs, macOS, illumos, AIX). Elsewhere every
// function returns [ErrNotSupported].
package pidfile
