// Command handoff is hello/plain served under handoff, as its README
// shows: upgrade.New, Listen, Ready, Serve, with signal handling. It
// prints the address on standard output and serves until SIGTERM.
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"

	"github.com/handoff-go/handoff/upgrade"
)

func main() {
	u, err := upgrade.New(upgrade.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer u.Stop()
	u.HandleSignals()
	ln, err := u.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	if err := u.Ready(); err != nil {
		log.Fatal(err)
	}
	fmt.Println(ln.Addr())
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello, world\n")
	})}
	if err := u.Serve(srv, ln); err != nil {
		log.Fatal(err)
	}
}
