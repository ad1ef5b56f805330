// Package readiness carries a started program's verdict back to the
// process that started it, and tells the started program when its starter
// has gone.
//
// # The channel
//
// [Pair] makes a connected pair of unix stream sockets. The starter keeps
// one end and hands the other to the program it starts. The started
// program writes exactly one message:
//
//	ready\n
//	failed: <reason>\n
//
// with [Ready] or [Fail]. The starter's [Wait] returns nil for "ready", a
// [*FailedError] carrying the reason verbatim for "failed", or [ErrClosed]
// when the other end closed without a message — the started program exited
// or crashed; the starter learns its exit status from the process itself.
//
// The starter answers "ready" with
//
//	go\n
//
// ([Go], awaited by [WaitGo]) when it hands over — at once, or after a
// probation in which it watches the program stay up. The program does
// not serve before that, so a program that dies in probation costs no
// request. The program then takes over (writes its pidfile, for one) and
// confirms with
//
//	live\n
//
// ([Live], awaited by [WaitLive]), or says "failed: <reason>" if it
// could not, while the starter still serves. A starter that reports to a
// service manager, and has promised the program so, then tells the
// manager that the program is the main process now and says
//
//	main\n
//
// ([Main], awaited by [WaitMain]), so that the program sends nothing to
// the manager before the manager accepts it.
//
// The same channel works the other way for free: when the starter exits,
// its end is closed by the kernel and [WaitClosed] in the started program
// returns. Nothing polls.
//
// # Service managers
//
// [Notifier] speaks systemd's sd_notify protocol (READY=1, RELOADING=1,
// MAINPID=, STATUS=, STOPPING=1, WATCHDOG=1) to the socket in
// NOTIFY_SOCKET, with no cgo and no dependency; [NotifyReceiver] is the
// other side, for a starter that lets the programs it starts notify it.
//
// # Limits
//
// A reason is at most [MaxReason] bytes; longer ones are cut. Newlines and
// other control characters in a reason are replaced by spaces so that a
// message is always one line.
package readiness
