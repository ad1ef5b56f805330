// Command tcpecho is a line echo server over TCP that is replaced by a new
// build of itself on SIGHUP, SIGUSR1 or SIGUSR2 without losing a line: each
// line it reads is written back prefixed with "version=<version> pid=<pid> ".
//
//	go build -ldflags "-X main.version=v2" -o tcpecho ./examples/tcpecho
//	./tcpecho -addr 127.0.0.1:7007 -pidfile echo.pid &
//	kill -HUP $(cat echo.pid)
//
// When a new generation takes over, each connection of the old one
// finishes the line it is on (a line already received is always
// answered), then the old generation closes it: clients reconnect and
// reach the new one. SIGTERM and SIGINT stop it gracefully (exit status 0).
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
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
	prefix := []byte(fmt.Sprintf("version=%s pid=%d ", version, os.Getpid()))
	if err := u.Ready(); err != nil {
		return err
	}
	return u.ServeConns(ln, func(ctx context.Context, c net.Conn) { echo(ctx, c, prefix) })
}

// echo answers each line read from c with prefix and the line. Once ctx
// is done (a drain began) it finishes the line it is on and every line
// already buffered, then returns; ServeConns closes c.
func echo(ctx context.Context, c net.Conn, prefix []byte) {
	br := bufio.NewReader(c)
	var line []byte
	for {
		if ctx.Err() != nil && len(line) == 0 && br.Buffered() == 0 {
			return
		}
		c.SetReadDeadline(time.Now().Add(pollInterval))
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		switch {
		case err == nil:
			out := append(append(make([]byte, 0, len(prefix)+len(line)), prefix...), line...)
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
