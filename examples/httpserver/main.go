// Command httpserver is the reference handoff server: it answers
// "version=<version> pid=<pid>" and is replaced by a new build of itself
// on SIGHUP, SIGUSR1 or SIGUSR2 without failing a request.
//
//	go build -ldflags "-X main.version=v2" -o httpserver ./examples/httpserver
//	./httpserver -addr 127.0.0.1:8080 -pidfile app.pid &
//	kill -USR2 $(cat app.pid)
//
// With -control app.sock, `handoff upgrade -control app.sock` upgrades it
// and exits 0 with the new PID, or 1 with the reason the new build failed.
//
// A deploy that installs releases side by side names a start script with
// -path (run.sh ending in `exec releases/$(cat CURRENT)/httpserver "$@"`):
// each upgrade runs whatever CURRENT names then. -env-file names a file of
// KEY=VALUE settings read at each upgrade; GET /env?name=APP_MODE answers
// the value of an APP_ variable.
//
// With -tls-cert and -tls-key it serves HTTPS, HTTP/2 included, on the
// handed-over TCP socket; with -h2c, HTTP/2 in the clear besides HTTP/1.1.
//
// Each generation hands the next the number of requests to / answered so
// far (Options.State); GET /count answers it. With -tls-cert, clients
// resume their TLS sessions after an upgrade: the generations share the
// session ticket keys (-share-tickets=false: they do not).
//
// Idle keep-alive connections move to the new generation at an upgrade:
// a client keeps its connection, and the next answer on it names the new
// PID. GET /echo?s=x answers "x " and the body of /, to tell pipelined
// answers apart.
//
// With -rollback-window 30s -health /healthz, a generation that handed
// over stays parked for 30s and takes back over if the new build exits,
// fails GET /healthz or is rolled back with `handoff rollback`; with
// -check-sha256 an upgrade starts only a build that matches the sum beside
// it.
//
// SIGTERM and SIGINT stop it gracefully (exit status 0). GET /sleep?d=5s
// sends its headers (X-Pid: the generation serving it) at once and the
// body of / after sleeping (at most an hour): a long request that keeps an
// old generation draining.
package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/handoff-go/handoff/upgrade"
)

// version is set at build time with -ldflags "-X main.version=v2".
var version = "dev"

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "address to listen on")
	pidFile := flag.String("pidfile", "", "pidfile naming the live process (empty: none)")
	upgradeTimeout := flag.Duration("upgrade-timeout", time.Minute, "how long a new generation may take to become ready")
	drainTimeout := flag.Duration("drain-timeout", 30*time.Second, "how long an old generation may drain")
	idleGrace := flag.Duration("idle-grace", time.Second, "how long a draining generation keeps an idle keep-alive connection it cannot move")
	probation := flag.Duration("probation", 0, "how long a new generation must stay up after it is ready before this one hands over")
	maxGenerations := flag.Int("max-generations", 4, "generations alive at once, draining ones included")
	controlSocket := flag.String("control", "", "control socket for `handoff upgrade` and `handoff status` (empty: none)")
	path := flag.String("path", "", "program or start script each upgrade runs, e.g. run.sh that execs releases/$(cat CURRENT)/httpserver (empty: what started this generation)")
	envFile := flag.String("env-file", "", "file of KEY=VALUE lines read at each upgrade into the next generation's environment (empty: none)")
	tlsCert := flag.String("tls-cert", "", "serve HTTPS, with HTTP/2, using this certificate (PEM; with -tls-key); each generation loads it anew")
	tlsKey := flag.String("tls-key", "", "the private key of -tls-cert (PEM)")
	h2c := flag.Bool("h2c", false, "also serve HTTP/2 without TLS (h2c, prior knowledge), beside HTTP/1.1")
	shareTickets := flag.Bool("share-tickets", true, "with -tls-cert: share TLS session ticket keys across generations, so that clients resume their sessions after an upgrade")
	rollbackWindow := flag.Duration("rollback-window", 0, "after a hand-over, keep this generation parked this long, and roll back to it if the new one exits, fails -health or `handoff rollback` is run (0: none)")
	health := flag.String("health", "", "with -rollback-window: a path on -addr the parked generation GETs every second; an answer other than 2xx rolls back (e.g. /healthz)")
	checkSum := flag.Bool("check-sha256", false, "start a new build only if it matches the SHA-256 sum in the file beside it (<program>.sha256, as sha256sum writes)")
	flag.Parse()
	opts := upgrade.Options{
		PIDFile:          *pidFile,
		UpgradeTimeout:   *upgradeTimeout,
		DrainTimeout:     *drainTimeout,
		IdleGrace:        *idleGrace,
		Probation:        *probation,
		MaxGenerations:   *maxGenerations,
		ControlSocket:    *controlSocket,
		Path:             *path,
		EnvFile:          *envFile,
		Version:          version,
		UpgradeOnSIGUSR1: true,
		RollbackWindow:   *rollbackWindow,
	}
	if *health != "" {
		if *tlsCert != "" {
			fmt.Fprintln(os.Stderr, "httpserver: -health asks over plain HTTP: it does not go with -tls-cert")
			os.Exit(2)
		}
		opts.HealthCheck = upgrade.HTTPCheck("http://" + *addr + *health)
	}
	if *checkSum {
		opts.Check = upgrade.SHA256File
	}
	if (*tlsCert == "") != (*tlsKey == "") {
		fmt.Fprintln(os.Stderr, "httpserver: -tls-cert and -tls-key go together")
		os.Exit(2)
	}
	if err := run(*addr, opts, *tlsCert, *tlsKey, *h2c, *shareTickets); err != nil {
		fmt.Fprintln(os.Stderr, "httpserver:", err)
		os.Exit(1)
	}
}

func run(addr string, opts upgrade.Options, tlsCert, tlsKey string, h2c, shareTickets bool) error {
	opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil)).With(slog.String("version", version))
	// The requests to / answered so far, by this generation and those
	// before it: each hands its count to the next as its state.
	var served atomic.Int64
	opts.State = func() ([]byte, error) { return strconv.AppendInt(nil, served.Load(), 10), nil }
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
	body := fmt.Sprintf("version=%s pid=%d", version, os.Getpid())
	mux := http.NewServeMux()
	if b := u.InheritedState(); b != nil {
		n, err := strconv.ParseInt(string(b), 10, 64)
		if err != nil {
			return fmt.Errorf("the previous generation's state %q: %w", b, err)
		}
		served.Store(n)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" {
			served.Add(1)
		}
		fmt.Fprint(w, body)
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "ok")
	})
	mux.HandleFunc("/count", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, served.Load())
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s", r.URL.Query().Get("s"), body)
	})
	mux.HandleFunc("/env", func(w http.ResponseWriter, r *http.Request) {
		name := r.URL.Query().Get("name")
		if !strings.HasPrefix(name, "APP_") { // settings only, never the rest of the environment
			http.Error(w, "name must start with APP_, e.g. /env?name=APP_MODE", http.StatusBadRequest)
			return
		}
		fmt.Fprint(w, os.Getenv(name))
	})
	mux.HandleFunc("/sleep", func(w http.ResponseWriter, r *http.Request) {
		d, err := time.ParseDuration(r.URL.Query().Get("d"))
		if err != nil || d < 0 || d > time.Hour {
			http.Error(w, "d must be a duration up to 1h, e.g. /sleep?d=5s", http.StatusBadRequest)
			return
		}
		// Headers at once, so that a client knows its request is being
		// served (and by which generation: X-Pid) before the body. The
		// connection moves to the new generation once the body is out,
		// if a drain began meanwhile (see Upgrader.Serve).
		w.Header().Set("X-Pid", strconv.Itoa(os.Getpid()))
		w.WriteHeader(http.StatusOK)
		http.NewResponseController(w).Flush()
		select {
		case <-time.After(d):
		case <-r.Context().Done():
		}
		fmt.Fprint(w, body)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	if h2c {
		srv.Protocols = new(http.Protocols)
		srv.Protocols.SetHTTP1(true)
		srv.Protocols.SetUnencryptedHTTP2(true)
	}
	if tlsCert != "" {
		// The socket handed over is the TCP listener; TLS is this
		// generation's own layer on it, with the certificate it loaded.
		cert, err := tls.LoadX509KeyPair(tlsCert, tlsKey)
		if err != nil {
			return err
		}
		cfg := &tls.Config{
			Certificates: []tls.Certificate{cert},
			NextProtos:   []string{"h2", "http/1.1"}, // HTTP/2 first, as ServeTLS offers it
		}
		if shareTickets {
			u.ShareSessionTickets(cfg)
		}
		ln = tls.NewListener(ln, cfg)
	}
	if err := u.Ready(); err != nil {
		return err
	}
	return u.Serve(srv, ln)
}
