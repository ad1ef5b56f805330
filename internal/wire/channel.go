package wire

// The messages on the readiness channel, one line each.
const (
	msgReady = "ready" // child: it can serve (or "failed: <reason>")
	msgGo    = "go"    // parent: hand-over now
	msgLive  = "live"  // child: pidfile written, serving (or "failed: <reason>")
	msgMain  = "main"  // parent: systemd knows the child as the main process
)
