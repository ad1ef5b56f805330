package upgrade_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/handoff-go/handoff/upgrade"
)

// A server that is replaced by a new build of itself on SIGHUP or SIGUSR2
// and stops gracefully on SIGTERM, without failing a request. Here it
// answers one request and is stopped, as SIGTERM would.
func Example() {
	u, err := upgrade.New(upgrade.Options{
		// PIDFile: "/run/app/app.pid", Logger: slog.Default(), ...
		DrainTimeout: 30 * time.Second,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer u.Stop()
	u.HandleSignals() // SIGHUP, SIGUSR2: upgrade; SIGTERM, SIGINT: stop

	// Inherited from the previous generation, or made now.
	ln, err := u.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	// ... load the configuration, open databases: what can fail goes
	// before Ready, so that a broken build fails its upgrade.
	if err := u.Ready(); err != nil {
		log.Fatal(err)
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") })
	served := make(chan error, 1)
	go func() { served <- u.Serve(&http.Server{Handler: h}, ln) }() // in main: return u.Serve(...)

	resp, err := http.Get("http://" + ln.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(string(body))

	u.Stop() // as SIGTERM does; a new generation's Ready does the same
	fmt.Println("drained:", <-served)
	// Output:
	// hello
	// drained: <nil>
}

// Upgrading from code, for example from an admin endpoint, and telling a
// failed new build apart from a refusal.
func ExampleUpgrader_Upgrade() {
	var u *upgrade.Upgrader // from upgrade.New, after Ready
	err := u.Upgrade(context.Background())
	var ce *upgrade.ChildError
	switch {
	case err == nil:
		fmt.Println("the new generation is live; this one drains")
	case errors.As(err, &ce):
		fmt.Printf("new build (PID %d) failed at stage %s; still serving: %v\n", ce.PID, ce.Stage, err)
	case errors.Is(err, upgrade.ErrInProgress):
		fmt.Println("an upgrade is already running: wait for its verdict")
	default:
		fmt.Println(err)
	}
}

// lineServer is a server of its own making, as a library might provide:
// Serve until its listener closes, and Shutdown to finish what it has.
type lineServer struct {
	wg sync.WaitGroup
}

func (s *lineServer) Serve(ln net.Listener) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer c.Close()
			io.WriteString(c, "hello\n")
		}()
	}
}

func (s *lineServer) Shutdown(ctx context.Context) error {
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Any server with Serve and Shutdown(ctx), or GracefulStop and Stop as
// gRPC's has, is drained by Serve: it stops accepting, lets the server take
// up what it accepted, and shuts it down within DrainTimeout.
//
//	grpcServer := grpc.NewServer()
//	return u.Serve(grpcServer, ln)
func ExampleUpgrader_Serve() {
	u, err := upgrade.New(upgrade.Options{DrainTimeout: 10 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	defer u.Stop()
	ln, err := u.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	if err := u.Ready(); err != nil {
		log.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- u.Serve(&lineServer{}, ln) }()

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	line, _ := io.ReadAll(c)
	c.Close()
	fmt.Print(string(line))
	u.Stop()
	fmt.Println("drained:", <-served)
	// Output:
	// hello
	// drained: <nil>
}

// A drain for a protocol other than HTTP: handlers see ctx cancelled when
// the drain starts, and connections still open at DrainTimeout are cut.
func ExampleUpgrader_ServeConns() {
	u, err := upgrade.New(upgrade.Options{DrainTimeout: 10 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	defer u.Stop()
	ln, err := u.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	if err := u.Ready(); err != nil {
		log.Fatal(err)
	}
	served := make(chan error, 1)
	go func() {
		served <- u.ServeConns(ln, func(ctx context.Context, c net.Conn) {
			io.Copy(c, io.LimitReader(c, 5)) // echo one word
		})
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	io.WriteString(c, "hello")
	echo, _ := io.ReadAll(c)
	c.Close()
	fmt.Println(string(echo))
	u.Stop()
	fmt.Println("drained:", <-served)
	// Output:
	// hello
	// drained: <nil>
}

// Work that is not a server — a queue consumer, here — holds the drain
// until it has finished: Serve in main returns only after it.
func ExampleHold() {
	u, err := upgrade.New(upgrade.Options{})
	if err != nil {
		log.Fatal(err)
	}
	if err := u.Ready(); err != nil {
		log.Fatal(err)
	}
	var out strings.Builder
	jobs := make(chan string, 2)
	jobs <- "resize photo"
	jobs <- "send mail"
	h := u.Hold()
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		defer h.Done()
		for {
			select {
			case j := <-jobs:
				fmt.Fprintln(&out, "done:", j)
			case <-u.Exit():
				for len(jobs) > 0 { // finish what was taken, take nothing more
					fmt.Fprintln(&out, "done:", <-jobs)
				}
				return
			}
		}
	}()
	u.Stop()
	<-finished
	fmt.Print(out.String())
	// Output:
	// done: resize photo
	// done: send mail
}
