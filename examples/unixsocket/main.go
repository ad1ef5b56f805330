// Command unixsocket is an HTTP server on a unix socket that answers
// "version=<version> pid=<pid>" and is replaced by a new build of itself
// on SIGHUP, SIGUSR1 or SIGUSR2 without failing a request. The socket path
// stays in place through every upgrade: clients never find it missing.
//
//	go build -ldflags "-X main.version=v2" -o unixsocket ./examples/unixsocket
//	./unixsocket -socket /tmp/app.sock -pidfile app.pid &
//	curl --unix-socket /tmp/app.sock http://app/
//	kill -HUP $(cat app.pid)
//
// SIGTERM and SIGINT stop it gracefully (exit status 0) and remove the
// socket file.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/handoff-go/handoff/upgrade"
)

// version is set at build time with -ldflags "-X main.version=v2".
var version = "dev"

func main() {
	socket := flag.String("socket", "app.sock", "path of the unix socket to listen on")
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
	if err := run(*socket, opts); err != nil {
		fmt.Fprintln(os.Stderr, "unixsocket:", err)
		os.Exit(1)
	}
}

func run(socket string, opts upgrade.Options) error {
	opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil)).With(slog.String("version", version))
	u, err := upgrade.New(opts)
	if err != nil {
		return err
	}
	defer u.Stop()
	u.HandleSignals()

	ln, err := u.Listen(context.Background(), "unix", socket)
	if err != nil {
		return err
	}
	body := fmt.Sprintf("version=%s pid=%d", version, os.Getpid())
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, body)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	if err := u.Ready(); err != nil {
		return err
	}
	return u.Serve(srv, ln)
}
