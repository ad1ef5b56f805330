// Package upgrade replaces a running server with a new build of itself
// without dropping a connection.
//
// # How an upgrade goes
//
// The running process (the parent) receives a signal, an
// [Upgrader.Upgrade] call or a request on its control socket. It starts
// the program again — the path it was started with, resolved now, so that
// a replaced file or a flipped current -> releases/N symlink starts the
// new build — and hands over its listening sockets and named files as
// inherited descriptors. The child takes them with [Upgrader.Listen],
// [Upgrader.ListenPacket] and [Upgrader.File], which return the inherited
// socket when there is one and create it otherwise, so the same code runs
// in the first generation and in every later one.
//
// When the child calls [Upgrader.Ready], it tells the parent it is ready;
// the parent answers go (after Options.Probation, if set; without one go
// is already waiting, sent with the start); the child writes the pidfile,
// confirms, and Ready returns. Only then does the
// parent's drain begin: [Upgrader.Exit] closes, it stops accepting, drains
// its in-flight work under a deadline and exits. The sockets themselves
// are never closed, so no queued connection is lost. If the child crashes,
// hangs past Options.UpgradeTimeout or calls [Upgrader.Fail], the parent
// stops and reaps it and keeps serving as if nothing happened; Upgrade
// returns a [*ChildError] that says why.
//
// # Serving
//
//	u, err := upgrade.New(upgrade.Options{PIDFile: "/run/app/app.pid"})
//	if err != nil {
//		log.Fatal(err)
//	}
//	defer u.Stop()
//	u.HandleSignals() // SIGHUP, SIGUSR2: upgrade; SIGTERM, SIGINT: stop
//	ln, err := u.Listen(ctx, "tcp", ":8080")
//	if err != nil {
//		log.Fatal(err)
//	}
//	if err := u.Ready(); err != nil {
//		log.Fatal(err)
//	}
//	return u.Serve(&http.Server{Handler: h}, ln) // returns after the drain
//
// [Upgrader.Serve] serves and drains an *http.Server without failing a
// request (http.Server.Shutdown alone does fail requests in a hand-over:
// it closes keep-alive connections under clients' feet), and any server
// that drains itself — Shutdown(ctx), or GracefulStop and Stop as
// *grpc.Server has. [Upgrader.ServeConns] drains a plain connection
// handler; [Hold] keeps the drain open for work of any other kind.
// [Upgrader.BeforeDrain] and [Upgrader.AfterDrain] register shutdown
// hooks, which run on a hand-over and on a plain stop alike.
//
// # Connections that survive the upgrade
//
// Serve moves idle HTTP/1.1 keep-alive connections to the new generation
// instead of closing them, and busy ones once they are answered: a client
// keeps its connection, and nothing is closed under a pool that reuses one
// without checking it. A connection moves only when it is provably between
// requests (this process has read none of the next); the descriptor
// passes to the new generation over a unix socket, and this process keeps
// its copy until the new one has taken it. TLS and HTTP/2 connections
// cannot move (their protocol state lives in this process); they drain as
// before, and [Upgrader.ShareSessionTickets] lets their clients resume
// their TLS sessions when they reconnect. Connections the application
// serves itself move with [Upgrader.PassConn] and
// [Upgrader.ReceiveConns], at a point of its choosing, with the state it
// needs to resume them; Options.State hands the next generation what the
// process knows, read with [Upgrader.InheritedState]. A new generation of
// an older build takes no connections: everything drains as before.
//
// # Rollback after the hand-over
//
// With Options.RollbackWindow, a generation that handed over drains and
// then stays parked, holding copies of the sockets; if the new generation
// exits, fails Options.HealthCheck ([HTTPCheck]) or calls
// [Upgrader.Rollback] within the window, the parked one starts its own
// build again (the binary it runs) with the sockets and hands over to it,
// and a new generation still alive drains. Options.Check ([SHA256File])
// checks a program before it starts; on Linux the file checked is the
// file started, from its descriptor.
//
// # Rules
//
// One Upgrader per process; its methods are safe for concurrent use. Take
// every socket and file before Ready: the next generation inherits only
// those, and calls out of order fail with an error that says so. At most
// one upgrade runs at a time; another gets [ErrInProgress] at once. After a
// successful upgrade or [Upgrader.Stop] the Upgrader is spent: the process
// drains and exits.
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
// # Builds of different versions
//
// Parent and child speak a versioned protocol and use what both know, so
// that a build upgrades into the next release and rolls back from it. The
// protocol is not part of this API and may grow between releases.
//
// # systemd
//
// When NOTIFY_SOCKET is set (systemd's Type=notify), the Upgrader reports
// with sd_notify, one datagram per line below, and sends nothing
// otherwise:
//
//	start (first generation, at Ready):
//	  READY=1, STATUS=serving: generation 1, pid P
//	upgrade begins (parent P):
//	  RELOADING=1, MONOTONIC_USEC=<now>, STATUS=upgrading: starting generation N
//	upgrade done (parent P, once the child C is live, before P stops accepting):
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
// when the child is live before it stops serving. The parent then tells
// the child, and only from then on does the child send anything (its Ready
// returns then), so that systemd never sees the child speak before it is
// the main process. A child whose parent died before that announces itself
// (MAINPID=C, READY=1), which systemd accepts only with NotifyAccess=all.
//
// With WATCHDOG_USEC set (and WATCHDOG_PID naming this process, or unset),
// the main process sends WATCHDOG=1 every half interval; the parent stops
// when it hands over, and the child, which gets WATCHDOG_USEC without
// WATCHDOG_PID, starts when it becomes the main process. A failure to
// send is logged, never fatal.
//
// Programs that are not handoff programs, such as ones built on
// go-systemd's activation package, can be the next generation with
// Options.ForeignChild: they get their sockets as socket activation hands
// them (see package fdpass) and say ready with sd_notify. A process
// started by a parent built with github.com/cloudflare/tableflip v1.2.x
// takes over from it, its sockets found by the same network and address,
// and upgrades with handoff from then on.
//
// # Standard error
//
// The child's standard error goes through a pipe to the parent until the
// parent says go (so that a failure can quote it), and then straight to
// the parent's own standard error. The child holds the pipe's read end
// too, so that a parent killed mid-upgrade cannot kill its child with
// SIGPIPE.
package upgrade
