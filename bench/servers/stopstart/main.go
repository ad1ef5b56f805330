// Command stopstart is the benchmark's baseline: a plain HTTP server with
// no hand-over at all. A deploy stops it (SIGTERM: graceful
// http.Server.Shutdown), waits for it to exit, then starts the new build.
//
//	go build -ldflags "-X main.version=v2" -o server ./servers/stopstart
//	./server -addr 127.0.0.1:8080 -pidfile app.pid
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/handoff-go/handoff/bench/servers/internal/hello"
	"github.com/handoff-go/handoff/pidfile"
)

// wrapTLS serves HTTPS with -tls-cert and -tls-key.
var wrapTLS = hello.TLSFlags()

// version is set at build time with -ldflags "-X main.version=v2".
var version = "dev"

// shutdownTimeout bounds the graceful shutdown.
const shutdownTimeout = 30 * time.Second

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "address to listen on")
	pidFile := flag.String("pidfile", "", "pidfile naming the live process (empty: none)")
	flag.Parse()
	log.SetPrefix(fmt.Sprintf("stopstart server %s pid %d: ", version, os.Getpid()))
	if err := run(*addr, *pidFile); err != nil {
		log.Fatal(err)
	}
}

func run(addr, pidFile string) error {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	if ln, err = wrapTLS(ln); err != nil {
		return err
	}
	srv := hello.Server(version)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	if pidFile != "" {
		if err := pidfile.Write(pidFile, os.Getpid()); err != nil {
			return err
		}
	}
	select {
	case err := <-served:
		return err
	case <-sigs:
	}
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
