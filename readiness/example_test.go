package readiness_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/handoff-go/handoff/readiness"
)

// A service tells systemd it is ready; a supervisor, or a test, listens as
// systemd does. Here both sides are in one process.
func ExampleNotifier() {
	dir, err := os.MkdirTemp("", "notify")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "notify")
	rcv, err := readiness.Listen(sock) // the supervisor's side
	if err != nil {
		log.Fatal(err)
	}
	defer rcv.Close()

	// The service's side: NOTIFY_SOCKET names the socket.
	n, err := readiness.NewNotifier(sock) // os.Getenv("NOTIFY_SOCKET")
	if err != nil {
		log.Fatal(err)
	}
	if err := n.Ready("serving on :8080"); err != nil {
		log.Fatal(err)
	}

	got, err := rcv.Receive(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	ready, _ := got.Value("READY")
	status, _ := got.Value("STATUS")
	fmt.Printf("READY=%s, status %q\n", ready, status)
	// Output: READY=1, status "serving on :8080"
}

// Without NOTIFY_SOCKET there is no service manager: the Notifier is nil
// and sends nothing, so callers need not check.
func ExampleNewNotifier() {
	n, err := readiness.NewNotifier("") // NOTIFY_SOCKET unset
	fmt.Println(n == nil, err, n.Ready("serving"))
	// Output: true <nil> <nil>
}
