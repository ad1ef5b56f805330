package upgrade_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/handoff-go/handoff/upgrade"
)

// A server that is replaced by a new build of itself on SIGHUP or SIGUSR2
// and stops gracefully on SIGTERM, without failing a request.
func Example() {
	u, err := upgrade.New(upgrade.Options{
		PIDFile:      "/run/app/app.pid",
		DrainTimeout: 30 * time.Second,
		Logger:       slog.New(slog.NewTextHandler(os.Stderr, nil)),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer u.Stop()
	defer u.HandleSignals()()

	ln, err := u.Listen(context.Background(), "tcp", "127.0.0.1:8080")
	if err != nil {
		log.Fatal(err)
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello\n")
	})
	if err := u.Ready(); err != nil {
		log.Fatal(err)
	}
	if err := u.ServeHTTP(&http.Server{Handler: h}, ln); err != nil {
		log.Fatal(err)
	}
}

// Upgrading from code, for example from an admin endpoint, and telling a
// failed new build apart from other refusals.
func ExampleUpgrader_Upgrade() {
	u, err := upgrade.New(upgrade.Options{UpgradeTimeout: 30 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	if err := u.Ready(); err != nil {
		log.Fatal(err)
	}
	err = u.Upgrade(context.Background())
	var ce *upgrade.ChildError
	switch {
	case err == nil:
		fmt.Println("the new generation is serving; this one drains")
	case errors.As(err, &ce):
		fmt.Printf("new build %d failed at stage %s; still serving: %v\n", ce.PID, ce.Stage, err)
	case errors.Is(err, upgrade.ErrInProgress):
		fmt.Println("an upgrade is already running")
	default:
		fmt.Println(err)
	}
}

// A drain for a protocol other than HTTP: handlers see ctx cancelled when
// the drain starts, and connections still open at DrainTimeout are cut.
func ExampleUpgrader_ServeConns() {
	u, err := upgrade.New(upgrade.Options{DrainTimeout: 10 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	defer u.Stop()
	ln, err := u.Listen(context.Background(), "tcp", "127.0.0.1:7000")
	if err != nil {
		log.Fatal(err)
	}
	if err := u.Ready(); err != nil {
		log.Fatal(err)
	}
	u.ServeConns(ln, func(ctx context.Context, c net.Conn) {
		io.Copy(c, c) // echo until the peer or the drain deadline ends it
	})
}
