// Command faulty is a handoff HTTP server like examples/httpserver, with
// faults set at build time, for the integration tests:
//
//	-X main.startDelay=1500ms     sleep before starting (a slow but good build)
//	-X main.dieAfterReady=500ms   say ready, then exit 4 that much later
//	-X main.failReason=text       report "failed: text" instead of ready
//	-X main.dieAfterConns=100     say ready, then exit 4 once 100 connections
//	                              came (moved from the old generation, say)
//	-X main.freezeAfterConns=100  the same, but stop (SIGSTOP) instead: a
//	                              frozen process, until SIGCONT
//	-X main.unhealthy=yes         serve, but answer GET /healthz with 503
//
// It accepts httpserver's flags, since it is started with httpserver's
// arguments when it replaces httpserver's binary.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/handoff-go/handoff/upgrade"
)

var (
	version          = "faulty"
	startDelay       = "0s"
	dieAfterReady    = "0s"
	failReason       = ""
	dieAfterConns    = "0"
	freezeAfterConns = "0"
	unhealthy        = ""
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "")
	pidFile := flag.String("pidfile", "", "")
	upgradeTimeout := flag.Duration("upgrade-timeout", 0, "")
	drainTimeout := flag.Duration("drain-timeout", 0, "")
	idleGrace := flag.Duration("idle-grace", 0, "")
	probation := flag.Duration("probation", 0, "")
	maxGenerations := flag.Int("max-generations", 0, "")
	rollbackWindow := flag.Duration("rollback-window", 0, "")
	health := flag.String("health", "", "")
	controlSocket := flag.String("control", "", "")
	flag.Parse()
	var healthCheck func(context.Context) error
	if *health != "" {
		healthCheck = upgrade.HTTPCheck("http://" + *addr + *health)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With(slog.String("version", version))
	u, err := upgrade.New(upgrade.Options{
		PIDFile: *pidFile, UpgradeTimeout: *upgradeTimeout, DrainTimeout: *drainTimeout, IdleGrace: *idleGrace,
		Probation: *probation, MaxGenerations: *maxGenerations, Logger: log,
		UpgradeOnSIGUSR1: true, RollbackWindow: *rollbackWindow, HealthCheck: healthCheck,
		ControlSocket: *controlSocket,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "faulty:", err)
		os.Exit(1)
	}
	if d, _ := time.ParseDuration(startDelay); d > 0 {
		fmt.Fprintln(os.Stderr, "faulty: starting slowly")
		time.Sleep(d)
		// More than a pipe holds: if the parent died meanwhile, this must
		// neither block nor kill us with SIGPIPE.
		for i := range 2000 {
			fmt.Fprintf(os.Stderr, "faulty: warming cache %04d %s\n", i, strings.Repeat(".", 40))
		}
	}
	defer u.Stop()
	u.HandleSignals()
	ln, err := u.Listen(context.Background(), "tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "faulty:", err)
		os.Exit(1)
	}
	body := fmt.Sprintf("version=%s pid=%d", version, os.Getpid())
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" && unhealthy != "" {
			http.Error(w, "database unreachable", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, body)
	})
	if failReason != "" {
		u.Fail(errors.New(failReason))
		os.Exit(1)
	}
	if d, _ := time.ParseDuration(dieAfterReady); d > 0 {
		time.AfterFunc(d, func() {
			fmt.Fprintln(os.Stderr, "panic: faulty: background worker died")
			os.Exit(4)
		})
	}
	if err := u.Ready(); err != nil {
		fmt.Fprintln(os.Stderr, "faulty:", err)
		os.Exit(1)
	}
	srv := &http.Server{Handler: h}
	if n, _ := strconv.Atoi(dieAfterConns); n > 0 {
		var conns atomic.Int64
		srv.ConnState = func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew && conns.Add(1) == int64(n) {
				fmt.Fprintf(os.Stderr, "panic: faulty: died after %d connections\n", n)
				os.Exit(4)
			}
		}
	}
	if n, _ := strconv.Atoi(freezeAfterConns); n > 0 {
		var conns atomic.Int64
		srv.ConnState = func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew && conns.Add(1) == int64(n) {
				fmt.Fprintf(os.Stderr, "faulty: stopping after %d connections\n", n)
				syscall.Kill(os.Getpid(), syscall.SIGSTOP)
			}
		}
	}
	u.Serve(srv, ln)
}
