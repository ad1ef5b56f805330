// Package readiness speaks systemd's sd_notify protocol, both ways, with
// no cgo and no dependency.
//
// A service tells its manager what it does with a [Notifier]: ready,
// reloading, stopping, its status text, a hand-over to a new main process,
// and watchdog pings. A supervisor, or a test, that starts programs and
// wants to know when they are ready listens with a [Receiver] and gives
// them its path as their NOTIFY_SOCKET.
//
//	n, err := readiness.NewNotifier(os.Getenv("NOTIFY_SOCKET"))
//	if err != nil {
//		log.Print(err) // a NOTIFY_SOCKET this package cannot reach
//	}
//	// ... bind, load, open: what can fail goes first.
//	n.Ready("serving on :8080") // a nil Notifier sends nothing
//	timeout, _ := readiness.WatchdogTimeout()
//	go n.Watchdog(ctx, timeout, nil)
//
// What is sent when, and by whom, is systemd's to define: see
// sd_notify(3). The package adds only the framing and the rules that make
// a datagram arrive as meant: one datagram per call, STATUS= kept on one
// line, MAINPID= together with READY=1, RELOADING=1 with the
// MONOTONIC_USEC that systemd 253 and later require.
package readiness
