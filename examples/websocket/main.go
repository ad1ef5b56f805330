// Command websocket is a WebSocket echo server that is replaced by a new
// build of itself on SIGHUP, SIGUSR1 or SIGUSR2: GET / answers
// "version=<version> pid=<pid>" as httpserver does, and GET /ws is a
// WebSocket that answers every text message m with "<version> <pid> m".
//
//	cd examples/websocket
//	go build -ldflags "-X main.version=v2" -o websocket .
//	./websocket -addr 127.0.0.1:8080 -pidfile ws.pid &
//	go run ./cmd/wsload -addr 127.0.0.1:8080 -clients 50 -duration 10s &
//	kill -HUP $(cat ws.pid)
//
// With -control ws.sock, `handoff upgrade -control ws.sock` upgrades it
// and exits 0 with the new PID, or 1 with the reason the new build failed.
//
// It is a module of its own, built on github.com/coder/websocket, so that
// no WebSocket library enters the dependency graph of the handoff library.
//
// # At an upgrade
//
// A WebSocket is a hijacked HTTP connection: [upgrade.Upgrader.Serve]
// cannot end it by itself, so it waits for its handler, and cuts the
// connection at -drain-timeout if it is still open then. This server does
// not let it come to that: when the new generation is live ([upgrade.Upgrader.Exit]
// is closed), every WebSocket of the old one gets a close frame with
// status 1001 (going away), the client answers it, and the handler
// returns, so the old generation has drained within a round trip or two
// and exits. Clients reconnect, and since the listening socket is the
// same one, handed over, their new connections reach the new generation.
//
// What a client loses is what it had in flight: a message that reaches
// the old generation after its close frame went out is not answered (the
// protocol discards data during the close handshake). A client that must
// not lose one sends it again on its new connection. cmd/wsload counts
// them.
//
// SIGTERM and SIGINT stop it the same way (exit status 0): each WebSocket
// gets 1001 and the server exits once they are closed.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/coder/websocket"

	"github.com/handoff-go/handoff/upgrade"
)

// version is set at build time with -ldflags "-X main.version=v2".
var version = "dev"

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "address to listen on")
	pidFile := flag.String("pidfile", "", "pidfile naming the live process (empty: none)")
	upgradeTimeout := flag.Duration("upgrade-timeout", time.Minute, "how long a new generation may take to become ready")
	drainTimeout := flag.Duration("drain-timeout", 30*time.Second, "how long an old generation may drain; WebSockets still open then are cut")
	controlSocket := flag.String("control", "", "control socket for `handoff upgrade` and `handoff status` (empty: none)")
	flag.Parse()
	opts := upgrade.Options{
		PIDFile:          *pidFile,
		UpgradeTimeout:   *upgradeTimeout,
		DrainTimeout:     *drainTimeout,
		ControlSocket:    *controlSocket,
		Version:          version,
		UpgradeOnSIGUSR1: true,
	}
	if err := run(*addr, opts); err != nil {
		fmt.Fprintln(os.Stderr, "websocket:", err)
		os.Exit(1)
	}
}

func run(addr string, opts upgrade.Options) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With(slog.String("version", version))
	opts.Logger = log
	u, err := upgrade.New(opts)
	if err != nil {
		return err
	}
	defer u.Stop()
	u.HandleSignals()

	ln, err := u.Listen(context.Background(), "tcp", addr)
	if err != nil {
		return err
	}
	pid := os.Getpid()
	body := fmt.Sprintf("version=%s pid=%d", version, pid)
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, body)
	})
	mux.Handle("/ws", &echo{exit: u.Exit(), prefix: fmt.Sprintf("%s %d ", version, pid), log: log})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	if err := u.Ready(); err != nil {
		return err
	}
	return u.Serve(srv, ln)
}

// echo is the /ws handler: it answers every text message with prefix and
// the message, until the client closes or exit is closed.
type echo struct {
	exit   <-chan struct{} // the drain began: close with 1001
	prefix string          // "<version> <pid> "
	log    *slog.Logger
}

// writeTimeout bounds the echo of one message: a client that stops
// reading is cut rather than kept open until the drain deadline.
const writeTimeout = 10 * time.Second

func (e *echo) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return // Accept has answered the request with the reason
	}
	defer c.CloseNow()

	// The close handshake runs beside the echo loop: Close sends 1001
	// and waits for the client's close frame, which the loop's Read
	// then returns as an error, and the handler returns. The handler
	// waits for Close, so that the drain, which waits for handlers,
	// sees this connection closed when it returns.
	done := make(chan struct{})
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		select {
		case <-e.exit:
			if err := c.Close(websocket.StatusGoingAway, "server upgrading; reconnect"); err != nil {
				e.log.Debug("close handshake", slog.String("remote", r.RemoteAddr), slog.Any("err", err))
			}
		case <-done:
		}
	}()
	defer func() {
		close(done)
		<-closed
	}()

	// Not the request's context in Read: a context that ends makes the
	// library close the connection without a close frame. Close ends a
	// blocked Read instead.
	for {
		typ, msg, err := c.Read(context.Background())
		if err != nil {
			return // closed by either side, or broken
		}
		if typ != websocket.MessageText {
			c.Close(websocket.StatusUnsupportedData, "text messages only")
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
		err = c.Write(ctx, websocket.MessageText, append([]byte(e.prefix), msg...))
		cancel()
		if err != nil {
			return // the close handshake has begun, or the client is gone
		}
	}
}
