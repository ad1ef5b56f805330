// Command udpecho is a datagram echo server over UDP that is replaced by a
// new build of itself on SIGHUP, SIGUSR1 or SIGUSR2 without losing a
// datagram: each datagram it reads is sent back prefixed with
// "version=<version> pid=<pid> ".
//
//	go build -ldflags "-X main.version=v2" -o udpecho ./examples/udpecho
//	./udpecho -addr 127.0.0.1:7008 -pidfile echo.pid &
//	kill -HUP $(cat echo.pid)
//
// Old and new generation share one socket. When the new one takes over,
// the old one stops reading, answers every datagram it has already read,
// and exits; datagrams still queued in the socket are read by the new
// generation. SIGTERM and SIGINT stop it gracefully (exit status 0).
package main

import (
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

func main() {
	addr := flag.String("addr", "127.0.0.1:7008", "address to listen on")
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
		fmt.Fprintln(os.Stderr, "udpecho:", err)
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

	pc, err := u.ListenPacket(context.Background(), "udp", addr)
	if err != nil {
		return err
	}
	prefix := []byte(fmt.Sprintf("version=%s pid=%d ", version, os.Getpid()))
	if err := u.Ready(); err != nil {
		return err
	}
	// A packet socket has no connections to drain: this program drains it
	// itself, holding the process's drain until it is done.
	h := u.Hold()
	defer h.Done()
	served := make(chan error, 1)
	go func() { served <- serve(pc, prefix) }()
	select {
	case err := <-served:
		return err // the socket failed before any drain
	case <-u.Exit():
	}
	start := time.Now()
	// Unblock ReadFrom; the loop answers what it has read and returns.
	pc.SetReadDeadline(time.Unix(1, 0))
	err = <-served
	log.Info("drained", slog.Duration("took", time.Since(start)))
	return err
}

// serve answers each datagram read from pc with prefix and the datagram,
// until a read deadline stops it (nil) or the socket fails (the error).
// Each datagram is answered before the next read, so none read is left
// unanswered when it returns.
func serve(pc net.PacketConn, prefix []byte) error {
	buf := make([]byte, 64<<10)
	out := make([]byte, 0, len(prefix)+len(buf))
	for {
		n, from, err := pc.ReadFrom(buf)
		if n > 0 {
			out = append(append(out[:0], prefix...), buf[:n]...)
			if _, werr := pc.WriteTo(out, from); werr != nil {
				slog.Default().Debug("echo not sent", slog.Any("error", werr))
			}
		}
		switch {
		case err == nil:
		case errors.Is(err, os.ErrDeadlineExceeded):
			return nil
		default:
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return nil
			}
			if n > 0 {
				continue // a datagram with an error (truncated): answered, go on
			}
			return err
		}
	}
}
