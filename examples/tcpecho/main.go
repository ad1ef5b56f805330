// Command tcpecho is a line echo server over TCP that is replaced by a new
// build of itself on SIGHUP, SIGUSR1 or SIGUSR2 without losing a line: each
// line it reads is written back prefixed with "version=<version> pid=<pid> ".
//
//	go build -ldflags "-X main.version=v2" -o tcpecho ./examples/tcpecho
//	./tcpecho -addr 127.0.0.1:7007 -pidfile echo.pid &
//	kill -HUP $(cat echo.pid)
//
// When a new generation takes over, each connection of the old one is
// passed to it between two lines ([upgrade.Upgrader.PassConn]), with the
// part of the next line already read: the client keeps its connection,
// and the next echo on it names the new pid. If the new generation cannot
// take it (an older build; at SIGTERM there is none), the connection
// finishes the line it is on and every line already received, and is
// closed: the client reconnects. SIGTERM and SIGINT stop it gracefully
// (exit status 0).
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/handoff-go/handoff/upgrade"
)

// version is set at build time with -ldflags "-X main.version=v2".
var version = "dev"

const (
	// pollInterval bounds how long a connection idles before its handler
	// looks whether a drain has begun.
	pollInterval = 100 * time.Millisecond
	// maxLine is the longest line answered; a longer one ends the
	// connection.
	maxLine = 64 << 10
)

func main() {
	addr := flag.String("addr", "127.0.0.1:7007", "address to listen on")
	pidFile := flag.String("pidfile", "", "pidfile naming the live process (empty: none)")
	upgradeTimeout := flag.Duration("upgrade-timeout", time.Minute, "how long a new generation may take to become ready")
	drainTimeout := flag.Duration("drain-timeout", 30*time.Second, "how long an old generation may drain")
	flag.Parse()
	opts := upgrade.Options{
		PIDFile:          *pidFile,
		UpgradeTimeout:   *upgradeTimeout,
		DrainTimeout:     *drainTimeout,
		Version:          version,
		UpgradeOnSIGUSR1: true,
	}
	if err := run(*addr, opts); err != nil {
		fmt.Fprintln(os.Stderr, "tcpecho:", err)
		os.Exit(1)
	}
}

func run(addr string, opts upgrade.Options) error {
	opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil)).With(slog.String("version", version))
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
	e := &echoer{u: u, prefix: []byte(fmt.Sprintf("version=%s pid=%d ", version, os.Getpid()))}
	// Connections the previous generation passes on, with what it had
	// read of them.
	if err := u.ReceiveConns(connKind, func(ctx context.Context, c net.Conn, state []byte) {
		e.echo(ctx, c, state)
	}); err != nil {
		return err
	}
	if err := u.Ready(); err != nil {
		return err
	}
	return u.ServeConns(ln, func(ctx context.Context, c net.Conn) { e.echo(ctx, c, nil) })
}

// connKind is the kind of connection generations pass each other.
const connKind = "echo"

// echoer answers lines.
type echoer struct {
	u      *upgrade.Upgrader
	prefix []byte
}

// echo answers each line read from c with prefix and the line, starting
// with the bytes in state. Once ctx is done (a drain began) it passes c to
// the new generation at the end of a line, with what it has read of the
// next; if it cannot, it finishes the line it is on and every line
// already buffered, then returns, and c is closed.
func (e *echoer) echo(ctx context.Context, c net.Conn, state []byte) {
	br := bufio.NewReaderSize(io.MultiReader(bytes.NewReader(state), c), max(4096, len(state)))
	if len(state) > 0 {
		br.Peek(len(state)) // all of it in the buffer: what goes on is Buffered
	}
	var line []byte
	passed := false
	for {
		if ctx.Err() != nil && !passed {
			passed = true // one try
			pending, _ := br.Peek(br.Buffered())
			if e.u.PassConn(connKind, c, append(line, pending...)) == nil {
				return
			}
		}
		if ctx.Err() != nil && len(line) == 0 && br.Buffered() == 0 {
			return
		}
		c.SetReadDeadline(time.Now().Add(pollInterval))
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		switch {
		case err == nil:
			out := append(append(make([]byte, 0, len(e.prefix)+len(line)), e.prefix...), line...)
			if _, err := c.Write(out); err != nil {
				return
			}
			line = line[:0]
		case len(line) > maxLine:
			return
		case errors.Is(err, bufio.ErrBufferFull), errors.Is(err, os.ErrDeadlineExceeded):
			// keep reading the line, or look at ctx again
		default:
			return // EOF or a broken connection
		}
	}
}
