// Command handoff is the benchmark's handoff server: handoff's documented
// HTTP pattern (upgrade.New, Listen, Ready, Serve), as in
// examples/httpserver. SIGHUP (or SIGUSR2) starts the binary now at the
// path it was started with and hands it the listening socket; SIGTERM
// stops it gracefully.
//
//	go build -ldflags "-X main.version=v2" -o server ./servers/handoff
//	./server -addr 127.0.0.1:8080 -pidfile app.pid
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"

	"github.com/handoff-go/handoff/bench/servers/internal/hello"
	"github.com/handoff-go/handoff/upgrade"
)

// wrapTLS serves HTTPS with -tls-cert and -tls-key.
var wrapTLS = hello.TLSFlags()

// version is set at build time with -ldflags "-X main.version=v2".
var version = "dev"

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "address to listen on")
	pidFile := flag.String("pidfile", "", "pidfile naming the live process (empty: none)")
	flag.Parse()
	if err := run(*addr, *pidFile); err != nil {
		fmt.Fprintln(os.Stderr, "handoff server:", err)
		os.Exit(1)
	}
}

func run(addr, pidFile string) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	u, err := upgrade.New(upgrade.Options{PIDFile: pidFile, Logger: log.With(slog.String("version", version))})
	if err != nil {
		return err
	}
	defer u.Stop()
	u.HandleSignals()

	ln, err := u.Listen(context.Background(), "tcp", addr)
	if err != nil {
		return err
	}
	if ln, err = wrapTLS(ln); err != nil {
		return err
	}
	srv := hello.Server(version)
	if err := u.Ready(); err != nil {
		return err
	}
	return u.Serve(srv, ln)
}
