// Command tfserver is an HTTP server built on github.com/cloudflare/tableflip
// v1.2.3, the way a team migrating to handoff runs today: SIGHUP upgrades it
// with tableflip, -pidfile names the live process, and it answers
// "version=<version> pid=<pid>". Its drain is careful (the listener closes
// first, responses say Connection: close for a grace period, then
// Shutdown; not SetKeepAlivesEnabled(false), which closes idle keep-alive
// connections under clients' feet), so that an upgrade out of it loses
// nothing on its side.
//
// The integration tests replace its binary with a handoff build and send
// SIGHUP: tableflip starts the handoff build, which must take over.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cloudflare/tableflip"
)

var version = "tableflip"

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "address to listen on")
	pidFile := flag.String("pidfile", "", "pidfile naming the live process")
	flag.Parse()
	upg, err := tableflip.New(tableflip.Options{PIDFile: *pidFile})
	if err != nil {
		log.Fatal(err)
	}
	defer upg.Stop()
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGHUP, syscall.SIGTERM)
		for s := range sig {
			if s == syscall.SIGTERM {
				upg.Stop()
				return
			}
			if err := upg.Upgrade(); err != nil {
				log.Println("upgrade failed:", err)
			}
		}
	}()
	ln, err := upg.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	body := fmt.Sprintf("version=%s pid=%d", version, os.Getpid())
	var draining atomic.Bool
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if draining.Load() {
			w.Header().Set("Connection", "close")
		}
		fmt.Fprint(w, body)
	})}
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(ln)
	}()
	if err := upg.Ready(); err != nil {
		log.Fatal(err)
	}
	<-upg.Exit()
	draining.Store(true)
	ln.Close()
	<-served
	time.Sleep(time.Second) // keep-alive clients get a Connection: close answer and move on
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv.Shutdown(ctx)
}
