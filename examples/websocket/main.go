// Command websocket is a WebSocket echo server that is replaced by a new
// build of itself on SIGHUP, SIGUSR1 or SIGUSR2 without closing a
// WebSocket: GET / answers "version=<version> pid=<pid>" as httpserver
// does, and GET /ws is a WebSocket that answers every text message m with
// "<version> <pid> m".
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
// It is a module of its own, built on github.com/gobwas/ws (which works on
// the connection itself, so that a connection can be resumed anywhere),
// so that no WebSocket library enters the dependency graph of the handoff
// library. Its load client, cmd/wsload, uses another library,
// github.com/coder/websocket.
//
// # At an upgrade
//
// When the new generation is live ([upgrade.Upgrader.Exit] is closed),
// each WebSocket of the old one finishes the message it is on, and is
// passed, between two messages, to the new generation with
// [upgrade.Upgrader.PassConn], together with the bytes of the next
// messages it had already read; the new generation resumes it in the take
// function it gave [upgrade.Upgrader.ReceiveConns]. The client sees
// nothing but the pid in the echoes change: no close, no reconnect, no
// message lost or out of order.
//
// If the new generation cannot take it (an older build, or SIGTERM: no
// new generation at all), the WebSocket is closed with status 1001 (going
// away) and the client reconnects, as with -pass=false. A message that
// reaches the old generation after its close frame went out is then not
// answered (the close handshake discards data); cmd/wsload counts them.
//
// SIGTERM and SIGINT stop it the same way (exit status 0): each WebSocket
// gets 1001 and the server exits once they are closed.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

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
	pass := flag.Bool("pass", true, "pass WebSockets on to the new generation at an upgrade (false: close them with 1001)")
	flag.Parse()
	opts := upgrade.Options{
		PIDFile:          *pidFile,
		UpgradeTimeout:   *upgradeTimeout,
		DrainTimeout:     *drainTimeout,
		ControlSocket:    *controlSocket,
		Version:          version,
		UpgradeOnSIGUSR1: true,
	}
	if err := run(*addr, opts, *pass); err != nil {
		fmt.Fprintln(os.Stderr, "websocket:", err)
		os.Exit(1)
	}
}

func run(addr string, opts upgrade.Options, pass bool) error {
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
	e := &echo{u: u, prefix: []byte(fmt.Sprintf("%s %d ", version, pid)), log: log, pass: pass}
	// WebSockets the previous generation passes on: resumed where it
	// left off, with what it had read of them.
	if err := u.ReceiveConns(wsKind, func(ctx context.Context, c net.Conn, state []byte) {
		e.session(ctx.Done(), c, bufio.NewReaderSize(&prefixed{state: state, Conn: c}, readBuf))
	}); err != nil {
		return err
	}
	body := fmt.Sprintf("version=%s pid=%d", version, pid)
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, body)
	})
	mux.Handle("/ws", e)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	if err := u.Ready(); err != nil {
		return err
	}
	return u.Serve(srv, ln)
}

// wsKind is the kind of connection generations pass each other.
const wsKind = "ws"

// readBuf is the size of a WebSocket's read buffer: what it has buffered
// travels with it when it is passed on (at most 32 KiB may).
const readBuf = 4096

// writeTimeout bounds the echo of one message: a client that stops
// reading is cut rather than kept open until the drain deadline.
const writeTimeout = 10 * time.Second

// echo is the /ws handler: it answers every text message with prefix and
// the message.
type echo struct {
	u      *upgrade.Upgrader
	prefix []byte // "<version> <pid> "
	log    *slog.Logger
	pass   bool // pass WebSockets to the new generation (else close with 1001)
}

func (e *echo) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, rw, _, err := ws.UpgradeHTTP(r, w)
	if err != nil {
		return // UpgradeHTTP has answered the request with the reason
	}
	// rw.Reader is net/http's buffer of the connection: it may hold the
	// client's first messages already.
	e.session(e.u.Exit(), c, rw.Reader)
}

// session echoes the messages of one WebSocket until the client closes
// it, or, once leave is closed, passes it on between two messages.
func (e *echo) session(leave <-chan struct{}, c net.Conn, br *bufio.Reader) {
	defer c.Close()
	s := &session{c: c}
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-leave:
			s.leave()
		case <-done:
		}
	}()
	rw := struct {
		io.Reader
		io.Writer
	}{br, c}
	for {
		switch s.next(br) {
		case closedConn:
			return
		case atBoundary:
			e.handOn(c, br)
			return
		}
		msg, op, err := wsutil.ReadClientData(rw) // answers pings and the client's close
		if err != nil {
			return // closed by the client, or broken
		}
		if op != ws.OpText {
			wsutil.WriteServerMessage(c, ws.OpClose, ws.NewCloseFrameBody(ws.StatusUnsupportedData, "text messages only"))
			return
		}
		c.SetWriteDeadline(time.Now().Add(writeTimeout))
		if err := wsutil.WriteServerMessage(c, ws.OpText, append(append([]byte{}, e.prefix...), msg...)); err != nil {
			return
		}
	}
}

// handOn passes c, between two messages, to the new generation with what
// br has read of the next ones; if it cannot, c is closed with 1001.
func (e *echo) handOn(c net.Conn, br *bufio.Reader) {
	if e.pass {
		state, _ := br.Peek(br.Buffered())
		err := e.u.PassConn(wsKind, c, state)
		if err == nil {
			return
		}
		e.log.Debug("WebSocket not passed on; closing it with 1001", slog.Any("error", err))
	}
	c.SetDeadline(time.Now().Add(writeTimeout))
	wsutil.WriteServerMessage(c, ws.OpClose, ws.NewCloseFrameBody(ws.StatusGoingAway, "server upgrading; reconnect"))
	// The client answers with its close frame; what comes before it is
	// discarded, as the close handshake says.
	for {
		if _, _, err := wsutil.ReadClientData(struct {
			io.Reader
			io.Writer
		}{br, c}); err != nil {
			return
		}
	}
}

// session is the state of one WebSocket that its reader and the drain
// share: the drain may stop a read only while the reader waits for the
// first byte of a message, so that no message is cut in two.
type session struct {
	c       net.Conn
	mu      sync.Mutex
	waiting bool // blocked for the first byte of the next message
	leaving bool // the drain began
}

// What next found.
const (
	message    = iota // a message begins: read it
	atBoundary        // the drain began between two messages: pass on
	closedConn        // the connection ended
)

// next waits for the next message to begin, or for the drain.
func (s *session) next(br *bufio.Reader) int {
	s.mu.Lock()
	if s.leaving {
		s.mu.Unlock()
		return atBoundary
	}
	s.waiting = true
	s.mu.Unlock()
	_, err := br.Peek(1)
	s.mu.Lock()
	s.waiting = false
	leaving := s.leaving
	s.mu.Unlock()
	if leaving {
		s.c.SetReadDeadline(time.Time{}) // leave may have set one in the past
	}
	var ne net.Error
	switch {
	case err == nil:
		return message // finish it first, even if the drain began
	case leaving && errors.As(err, &ne) && ne.Timeout():
		return atBoundary
	default:
		return closedConn
	}
}

// leave stops a reader waiting for the next message; one in the middle of
// a message sees it when the message is done.
func (s *session) leave() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.leaving = true
	if s.waiting {
		s.c.SetReadDeadline(time.Unix(1, 0))
	}
}

// prefixed reads state, then the connection: a WebSocket resumed with
// what the previous generation had read of it.
type prefixed struct {
	state []byte
	net.Conn
}

func (p *prefixed) Read(b []byte) (int, error) {
	if len(p.state) > 0 {
		n := copy(b, p.state)
		p.state = p.state[n:]
		return n, nil
	}
	return p.Conn.Read(b)
}
