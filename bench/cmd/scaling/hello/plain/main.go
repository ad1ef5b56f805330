// Command plain is a hello-world HTTP server with net/http alone: the
// baseline for the memory and size of hello/handoff. It listens on a
// loopback port, prints the address on standard output, and serves until
// it is killed.
package main

import (
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
)

func main() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ln.Addr())
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello, world\n")
	})}
	log.Fatal(srv.Serve(ln))
}
