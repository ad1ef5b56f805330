// Package upgrade replaces a running server with a new build of itself
// without dropping a connection.
//
// # How an upgrade goes
//
// The running process (the parent) receives a signal or an
// [Upgrader.Upgrade] call. It starts the program again — the path it was
// started with, resolved now, so a replaced file or a flipped
// current -> releases/N symlink starts the new build — and hands over its
// listening sockets and named files as descriptors 3.. (see package
// fdpass). The child takes them with [Upgrader.Listen],
// [Upgrader.ListenPacket] and [Upgrader.File], which return the inherited
// socket when there is one and create it otherwise, so the same code runs
// in the first generation and every later one.
//
// When the child calls [Upgrader.Ready], it tells the parent "ready" over
// a socket pair; the parent answers "go" (after Options.Probation, if
// set); the child writes the pidfile, confirms "live", and Ready returns.
// Only then does the parent's [Upgrader.Exit] close: it stops accepting,
// drains its in-flight work under a deadline and exits. The socket itself is never closed, so no queued connection is
// lost. If the child crashes, hangs past Options.UpgradeTimeout or calls
// [Upgrader.Fail], the parent stops and reaps it and keeps serving as if
// nothing happened; Upgrade returns a [*ChildError] that says why.
//
// # Serving
//
//	u, err := upgrade.New(upgrade.Options{PIDFile: "/run/app.pid"})
//	if err != nil { log.Fatal(err) }
//	defer u.Stop()
//	defer u.HandleSignals()() // SIGHUP/SIGUSR2 upgrade; SIGTERM/SIGINT stop
//	ln, err := u.Listen(ctx, "tcp", ":8080")
//	if err != nil { log.Fatal(err) }
//	if err := u.Ready(); err != nil { log.Fatal(err) }
//	err = u.ServeHTTP(&http.Server{Handler: h}, ln) // returns after the drain
//
// [Upgrader.ServeHTTP] is the way to serve net/http: http.Server.Shutdown
// alone fails requests during a hand-over (it closes keep-alive
// connections under clients' feet). [Upgrader.ServeConns] and [Tracker]
// do the same for other protocols.
//
// # Rules
//
// One Upgrader per process. Its methods are safe for concurrent use. At
// most one upgrade runs at a time; a second gets [ErrInProgress] at once.
// After a successful upgrade or [Upgrader.Stop] the Upgrader is spent: the
// process drains and exits.
//
// # Probation
//
// With Options.Probation set, the parent watches a child that said ready
// for that long before it hands over; the child's Ready waits meanwhile
// and the parent alone serves, so a child that dies in probation costs no
// request. The trade-off: the new build is not exercised by traffic during
// probation, only by staying alive, and every upgrade takes that much
// longer.
//
// # systemd
//
// When NOTIFY_SOCKET is set (systemd's Type=notify), the Upgrader reports
// with sd_notify, one datagram per line below, and sends nothing otherwise:
//
//	start (first generation, at Ready):
//	  READY=1, STATUS=serving: generation 1, pid P
//	upgrade begins (parent P):
//	  RELOADING=1, MONOTONIC_USEC=<now>, STATUS=upgrading: starting generation N
//	upgrade done (parent P, once the child C said live, before P stops accepting):
//	  MAINPID=C, READY=1, STATUS=serving: generation N, pid C (upgraded from pid P)
//	upgrade failed (parent P, which keeps serving; not when Stop cancelled it):
//	  STATUS=upgrade failed: <the ChildError>, READY=1
//	upgrade refused, too many generations draining (P):
//	  RELOADING=1, MONOTONIC_USEC=<now>; then STATUS=upgrade refused: <why>, READY=1
//	stop (the live generation only):
//	  STOPPING=1, STATUS=stopping: draining generation N, pid P
//
// The parent, not the child, sends MAINPID: systemd accepts it from the
// main process under its default NotifyAccess=main, and the parent knows
// the child is live before it stops serving. The parent then tells the
// child "main" over their channel, and only from then on does the child
// send anything (its Ready returns then), so that systemd never sees the
// child speak before it is the main process. A child whose parent died
// before that announces itself (MAINPID=C, READY=1), which systemd accepts
// only with NotifyAccess=all.
//
// With WATCHDOG_USEC set (and WATCHDOG_PID naming this process, or unset),
// the main process sends WATCHDOG=1 every half interval; the parent stops
// when it hands over, and the child, which gets WATCHDOG_USEC without
// WATCHDOG_PID, starts when it becomes the main process. A failure to
// send is logged, never fatal.
//
// Programs that are not handoff programs, such as ones built on
// go-systemd's activation package, can be the next generation with
// Options.ForeignChild (LISTEN_PID set to their own PID by a /bin/sh exec
// shim, ready by sd_notify). A process started by a parent built with
// github.com/cloudflare/tableflip v1.2.x takes over from it (see package
// fdpass, EnvTableflip) and upgrades with handoff from then on.
//
// # Standard error
//
// The child's standard error goes through a pipe to the parent until the
// parent says go (so a failure can quote it), and then straight to the
// parent's own standard error. The child holds the pipe's read end too,
// so a parent killed mid-upgrade cannot kill its child with SIGPIPE.
package upgrade
