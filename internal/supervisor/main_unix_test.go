//go:build unix

package supervisor

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/handoff-go/handoff/readiness"
)

// The test binary doubles as a worker, chosen by its first argument,
// before any test runs.
const (
	argWorker = "__test-worker" // followed by the path of a mode file
	argNotify = "__test-notify" // sends READY=1 from another process
)

func TestMain(m *testing.M) {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case argWorker:
			os.Exit(testWorker(os.Args[2]))
		case argNotify:
			if err := sendNotify("READY=1"); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			os.Exit(0)
		}
	}
	os.Exit(m.Run())
}

func sendNotify(lines ...string) error {
	n, err := readiness.NewNotifier(os.Getenv("NOTIFY_SOCKET"))
	if err != nil {
		return err
	}
	return n.Notify(lines...)
}

// testWorker behaves as the mode file says:
//
//	ready   check the systemd variables, notify, answer each connection with the PID
//	exit3   fail at start with status 3
//	forked  have another process send READY=1 (which must not count)
func testWorker(modeFile string) int {
	time.AfterFunc(time.Minute, func() { os.Exit(99) }) // watchdog
	mode, err := os.ReadFile(modeFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	switch strings.TrimSpace(string(mode)) {
	case "exit3":
		fmt.Fprintln(os.Stderr, "boom: cannot parse config")
		return 3
	case "forked":
		out, err := exec.Command(os.Args[0], argNotify).CombinedOutput()
		if err != nil {
			fmt.Fprintln(os.Stderr, err, string(out))
		}
		select {}
	}
	if got := os.Getenv("LISTEN_PID"); got != strconv.Itoa(os.Getpid()) {
		fmt.Fprintf(os.Stderr, "LISTEN_PID=%q, want %d\n", got, os.Getpid())
		return 1
	}
	if os.Getenv("LISTEN_FDS") != "1" || os.Getenv("HANDOFF") != "" {
		fmt.Fprintf(os.Stderr, "LISTEN_FDS=%q HANDOFF=%q\n", os.Getenv("LISTEN_FDS"), os.Getenv("HANDOFF"))
		return 1
	}
	ln, err := net.FileListener(os.NewFile(3, os.Getenv("LISTEN_FDNAMES")))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "%d\n", os.Getpid())
			c.Close()
		}
	}()
	if err := sendNotify("STATUS=up", "READY=1"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	<-term
	ln.Close()
	return 0
}
