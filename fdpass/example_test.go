package fdpass_test

import (
	"errors"
	"fmt"
	"log"
	"net"
	"os/exec"
	"strings"

	"github.com/handoff-go/handoff/fdpass"
)

// A socket-activated server takes its listener by name, and listens by
// itself when it was started by hand.
func ExampleInherit() {
	in, err := fdpass.Inherit()
	if err != nil {
		log.Fatal(err) // the starter passed a broken environment
	}
	ln, err := in.Listener("web", "tcp")
	if errors.Is(err, fdpass.ErrNotFound) {
		fmt.Println("web: not inherited; listening anew")
		ln, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	in.CloseUnclaimed() // what nobody asked for
	// Output: web: not inherited; listening anew
}

// A parent hands a listener to a program it starts, which finds it as
// systemd would give it: here a shell that prints what it was told.
func ExampleStart() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	cmd := exec.Command("/bin/sh", "-c", `echo "$LISTEN_FDS $LISTEN_FDNAMES"; [ "$LISTEN_PID" = $$ ] && echo "LISTEN_PID is mine"`)
	var out strings.Builder
	cmd.Stdout = &out
	if err := fdpass.Start(cmd, fdpass.Named{Name: "web", Conn: ln.(*net.TCPListener)}); err != nil {
		log.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		log.Fatal(err)
	}
	fmt.Print(out.String())
	// Output:
	// 1 web
	// LISTEN_PID is mine
}
