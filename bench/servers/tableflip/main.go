// Command tableflip is the benchmark's tableflip (v1.2.3) server, written
// the way tableflip's README shows: tableflip.New with a PIDFile,
// upg.Listen, go srv.Serve, Upgrade on SIGHUP, Ready, and after
// <-upg.Exit() a graceful srv.Shutdown bounded by a timeout.
//
// It is also the starting point of an integration test in which a
// tableflip server's binary is replaced by a handoff build: keep its flags
// (-addr, -pidfile) and its upgrade signal (SIGHUP) as they are.
//
//	go build -ldflags "-X main.version=v2" -o server ./servers/tableflip
//	./server -addr 127.0.0.1:8080 -pidfile app.pid
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/cloudflare/tableflip"
	"github.com/handoff-go/handoff/bench/servers/internal/hello"
)

// wrapTLS serves HTTPS with -tls-cert and -tls-key.
var wrapTLS = hello.TLSFlags()

// version is set at build time with -ldflags "-X main.version=v2".
var version = "dev"

// shutdownTimeout bounds the old process's graceful shutdown.
const shutdownTimeout = 30 * time.Second

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "address to listen on")
	pidFile := flag.String("pidfile", "", "pidfile naming the live process (empty: none)")
	flag.Parse()
	log.SetPrefix(fmt.Sprintf("tableflip server %s pid %d: ", version, os.Getpid()))

	upg, err := tableflip.New(tableflip.Options{PIDFile: *pidFile})
	if err != nil {
		log.Fatal(err)
	}
	defer upg.Stop()

	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGHUP)
		for range sig {
			if err := upg.Upgrade(); err != nil {
				log.Println("upgrade failed:", err)
			}
		}
	}()

	ln, err := upg.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	if ln, err = wrapTLS(ln); err != nil {
		log.Fatal(err)
	}
	srv := hello.Server(version)
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Println("serve:", err)
		}
	}()

	if err := upg.Ready(); err != nil {
		log.Fatal(err)
	}
	<-upg.Exit()

	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		log.Println("shutdown:", err)
	}
}
