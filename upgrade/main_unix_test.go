//go:build unix

package upgrade

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/handoff-go/handoff/pidfile"
	"github.com/handoff-go/handoff/readiness"
)

// The tests re-execute the test binary as the new generation: TestMain
// runs the helper named by envHelper instead of the tests.
const envHelper = "UPGRADE_TEST_HELPER"

// Variables a helper reads.
const (
	envPIDFile = "UPGRADE_TEST_PIDFILE"
	envUnix    = "UPGRADE_TEST_UNIX"
	envUDP     = "UPGRADE_TEST_UDP"
	envTCP     = "UPGRADE_TEST_TCP"
	envFiles   = "UPGRADE_TEST_FILES"
	envMark    = "UPGRADE_TEST_MARK"
	envNames   = "UPGRADE_TEST_NAMES" // where the "names" helper writes its threads' names
)

var helpers = map[string]func() int{
	// crash writes to stderr and exits 3 before it is ready.
	"crash": func() int {
		fmt.Fprintln(os.Stderr, "boom: cannot parse config")
		return 3
	},
	// hang never becomes ready; SIGTERM ends it.
	"hang": func() int {
		fmt.Fprintln(os.Stderr, "warming caches")
		select {}
	},
	// stubborn never becomes ready and ignores SIGTERM.
	"stubborn": func() int {
		signal.Ignore(syscall.SIGTERM)
		select {}
	},
	// fail reports a failure through the upgrader.
	"fail": func() int {
		u, err := New(Options{})
		if err != nil {
			return 10
		}
		if err := u.Fail(errors.New("bad config: key \"port\" missing")); err != nil {
			return 11
		}
		return 1
	},
	// systemd is a foreign (non-handoff) child: it checks the variables a
	// systemd-style program relies on, says READY=1 with sd_notify and
	// waits for SIGTERM. Anything wrong: it says why in STATUS= and exits 7.
	"systemd": func() int {
		n, err := readiness.NewNotifier(os.Getenv("NOTIFY_SOCKET"))
		if err != nil || n == nil {
			return 6
		}
		want := os.Getenv(envFiles)
		if want == "" {
			want = "1"
		}
		switch {
		case os.Getenv("LISTEN_PID") != strconv.Itoa(os.Getpid()):
			n.Status("LISTEN_PID=" + os.Getenv("LISTEN_PID") + ", want " + strconv.Itoa(os.Getpid()))
			return 7
		case os.Getenv("LISTEN_FDS") != want:
			n.Status("LISTEN_FDS=" + os.Getenv("LISTEN_FDS") + ", want " + want)
			return 7
		case os.Getenv("HANDOFF") != "":
			n.Status("a HANDOFF variable reached a foreign child")
			return 7
		}
		term := make(chan os.Signal, 1)
		signal.Notify(term, syscall.SIGTERM)
		if err := n.Ready("up"); err != nil {
			return 8
		}
		<-term
		return 0
	},
	// dies says ready and dies 300ms later, inside a longer probation.
	"dies": func() int {
		u, err := New(Options{PIDFile: os.Getenv(envPIDFile)})
		if err != nil {
			return 10
		}
		ln, err := u.Listen(context.Background(), "tcp", "127.0.0.1:0")
		if err != nil {
			return 11
		}
		time.AfterFunc(300*time.Millisecond, func() {
			fmt.Fprintln(os.Stderr, "panic: background worker failed")
			os.Exit(4)
		})
		u.Ready()
		http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "child") }))
		return 0
	},
	// hygiene adopts its listener but not the extra file, becomes ready,
	// and runs a program that reports its environment and descriptors to
	// the file named by envMark.
	"hygiene": func() int {
		u, err := New(Options{})
		if err != nil {
			return 10
		}
		if _, err := u.Listen(context.Background(), "tcp", "127.0.0.1:0"); err != nil {
			return 11
		}
		if err := u.Ready(); err != nil {
			return 12
		}
		out, err := exec.Command("/bin/sh", "-c", "env; echo FDS; ls -l /proc/self/fd/").CombinedOutput()
		if err != nil {
			return 13
		}
		os.WriteFile(os.Getenv(envMark), out, 0o644)
		return 0
	},
	// nospace fails to write its pidfile, as on a full disk.
	"nospace": func() int {
		u, err := New(Options{PIDFile: os.Getenv(envPIDFile)})
		if err != nil {
			return 10
		}
		u.writePID = func(string, int) error {
			return &os.PathError{Op: "write", Path: os.Getenv(envPIDFile), Err: syscall.ENOSPC}
		}
		if err := u.Ready(); err == nil {
			return 11
		}
		return 1
	},
	// hold binds the addresses in envUnix (a path), envUDP and envMark
	// (tcp), says so on stdout, and waits to be killed.
	"hold": func() int {
		if _, err := net.Listen("tcp", os.Getenv(envMark)); err != nil {
			return 10
		}
		if _, err := net.ListenPacket("udp", os.Getenv(envUDP)); err != nil {
			return 11
		}
		if _, err := net.Listen("unix", os.Getenv(envUnix)); err != nil {
			return 12
		}
		fmt.Println("holding")
		select {}
	},
	// chatty writes to stderr at length before it is ready.
	"chatty": func() int {
		for i := range 200 {
			fmt.Fprintf(os.Stderr, "starting, step %d\n", i)
		}
		u, err := New(Options{})
		if err != nil {
			return 10
		}
		if err := u.Ready(); err != nil {
			return 11
		}
		return 0
	},
	// pidfail writes the pidfile, as Ready does, then fails: the parent
	// must point the pidfile back at itself.
	"pidfail": func() int {
		u, err := New(Options{})
		if err != nil {
			return 10
		}
		if err := pidfile.Write(os.Getenv(envPIDFile), os.Getpid()); err != nil {
			return 11
		}
		u.Fail(errors.New("lost the race"))
		return 1
	},
	// ready adopts the files named in envFiles, says ready and exits.
	"ready": func() int {
		u, err := New(Options{PIDFile: os.Getenv(envPIDFile)})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 10
		}
		n, _ := strconv.Atoi(os.Getenv(envFiles))
		for i := range n {
			if _, err := u.File(fileName(i), func() (*os.File, error) {
				return nil, errors.New("not inherited")
			}); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 12
			}
		}
		if err := u.Ready(); err != nil {
			return 13
		}
		return 0
	},
	// many lets the workers adopt every socket ahead, then takes the unix
	// stream sockets s0.sock ... of the directory envUnix names but the
	// last of envFiles, the datagram socket d.sock, and the TCP socket
	// handed as 127.0.0.1:0 by the address localhost:envTCP; says ready;
	// writes how many the workers adopted and the paths of the unix
	// sockets it holds, a line a descriptor, to report; then answers one
	// connection on each listener with "child" and echoes one datagram,
	// and exits.
	"many": func() int {
		u, err := New(Options{})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 10
		}
		if u.ahead == nil {
			return 15
		}
		u.ahead.wg.Wait()
		dir := os.Getenv(envUnix)
		n, _ := strconv.Atoi(os.Getenv(envFiles))
		tcp, err := u.Listen(context.Background(), "tcp", "localhost:"+os.Getenv(envTCP))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 16
		}
		lns := []net.Listener{tcp}
		for i := range n - 1 {
			ln, err := u.Listen(context.Background(), "unix", filepath.Join(dir, fmt.Sprintf("s%d.sock", i)))
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 11
			}
			lns = append(lns, ln)
		}
		pc, err := u.ListenPacket(context.Background(), "unixgram", filepath.Join(dir, "d.sock"))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 12
		}
		if err := u.Ready(); err != nil {
			return 13
		}
		report := fmt.Appendf(nil, "adopted ahead %d\n", u.ahead.adopted)
		fds, _ := os.ReadDir("/proc/self/fd")
		for _, e := range fds {
			fd, _ := strconv.Atoi(e.Name())
			if sa, err := unix.Getsockname(fd); err == nil {
				if a, ok := sa.(*unix.SockaddrUnix); ok && strings.HasPrefix(a.Name, dir) {
					report = append(report, a.Name+"\n"...)
				}
			}
		}
		out := filepath.Join(dir, "report")
		if os.WriteFile(out+".tmp", report, 0o644) != nil || os.Rename(out+".tmp", out) != nil {
			return 14
		}
		var wg sync.WaitGroup
		for _, ln := range lns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if c, err := ln.Accept(); err == nil {
					io.WriteString(c, "child\n")
					c.Close()
				}
			}()
		}
		buf := make([]byte, 64)
		if m, from, err := pc.ReadFrom(buf); err == nil {
			pc.WriteTo(buf[:m], from)
		}
		wg.Wait()
		return 0
	},
	// names says ready and writes the names of its threads, a line each,
	// to the file envNames names.
	"names": func() int {
		u, err := New(Options{})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 10
		}
		if err := u.Ready(); err != nil {
			return 13
		}
		// The threads are named once the parent has exited: wait until
		// none is named after a number, or report the names as they are.
		var names []byte
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			tasks, err := os.ReadDir("/proc/self/task")
			if err != nil {
				return 14
			}
			names = names[:0]
			numbered := false
			for _, t := range tasks {
				b, _ := os.ReadFile("/proc/self/task/" + t.Name() + "/comm")
				names = append(names, b...)
				n := strings.TrimSpace(string(b))
				numbered = numbered || (n != "" && strings.Trim(n, "0123456789") == "")
			}
			if !numbered || time.Now().After(deadline) {
				break
			}
		}
		out := os.Getenv(envNames)
		if os.WriteFile(out+".tmp", names, 0o644) != nil || os.Rename(out+".tmp", out) != nil {
			return 15
		}
		return 0
	},
	// tableflip is a handoff build started by a tableflip parent: it asks
	// for the listener the parent made on "127.0.0.1:0" (only tableflip's
	// name for it can match: port 0 matches no bound address), prints
	// the address it got and its generation, and says ready.
	"tableflip": func() int {
		u, err := New(Options{MaxGenerations: 2})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 10
		}
		ln, err := u.Listen(context.Background(), "tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 11
		}
		fmt.Printf("%s %d\n", ln.Addr(), u.Generation())
		if err := u.Ready(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 12
		}
		// The tableflip parent is still alive: with it, a new generation
		// would make three.
		err = u.Upgrade(context.Background())
		fmt.Printf("refused: %v\n", errors.Is(err, ErrTooManyGenerations))
		return 0
	},
	// bare writes one byte to fd 3 and exits: the cost of fork+exec alone.
	"bare": func() int {
		os.NewFile(3, "pipe").Write([]byte{1})
		return 0
	},
	// waitparent says ready, then writes its generation to the file
	// named by envMark once its parent is gone.
	"waitparent": func() int {
		u, err := New(Options{})
		if err != nil || u.Generation() < 2 {
			return 10
		}
		if err := u.Ready(); err != nil {
			return 11
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := u.WaitForParent(ctx); err != nil {
			return 12
		}
		os.WriteFile(os.Getenv(envMark), []byte(strconv.Itoa(u.Generation())), 0o644)
		return 0
	},
	// serve is a small server on a unix socket and a UDP socket that
	// upgrades on SIGHUP and stops on SIGTERM.
	"serve": serveHelper,
	// hangunix takes the unix listener, serves it from before Ready, and
	// never becomes ready; SIGTERM stops it gracefully.
	"hangunix": func() int {
		u, err := New(Options{})
		if err != nil {
			return 10
		}
		ln, err := u.Listen(context.Background(), "unix", os.Getenv(envUnix))
		if err != nil {
			return 11
		}
		u.HandleSignals()
		u.ServeConns(ln, func(context.Context, net.Conn) {}) // returns after Stop
		return 0
	},
	// badopts is a new build whose options New refuses: it must tell the
	// parent why.
	"badopts": func() int {
		if _, err := New(Options{MaxGenerations: 1}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0
	},
	// badoptsfds is badopts that then writes to the file named by envMark
	// which of the descriptors it was handed (3..) are still open.
	"badoptsfds": func() int {
		n, _ := strconv.Atoi(os.Getenv("LISTEN_FDS"))
		n += 3 + 1 // ready, stderr, stderr-pipe, and an elder (see the test)
		// The parent stops a child that failed at once: live long enough
		// to look.
		signal.Ignore(syscall.SIGTERM)
		if _, err := New(Options{MaxGenerations: 1}); err == nil {
			return 10
		}
		var open []string
		for fd := 3; fd < 3+n; fd++ {
			if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil {
				open = append(open, strconv.Itoa(fd))
			}
		}
		os.WriteFile(os.Getenv(envMark), []byte(strings.Join(open, ",")), 0o644)
		return 1
	},
	// waitearly calls WaitForParent before Ready, which would wait for a
	// parent that waits for it; it must fail at once. It writes what it
	// got to the file named by envMark, then says ready.
	"waitearly": func() int {
		u, err := New(Options{})
		if err != nil {
			return 10
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err = u.WaitForParent(ctx)
		os.WriteFile(os.Getenv(envMark), []byte(fmt.Sprint(err)), 0o644)
		if err := u.Ready(); err != nil {
			return 11
		}
		return 0
	},
}

func fileName(i int) string { return "f" + strconv.Itoa(i) }

func TestMain(m *testing.M) {
	if name := os.Getenv(envHelper); name != "" {
		time.AfterFunc(60*time.Second, func() {
			fmt.Fprintln(os.Stderr, "helper watchdog: killing hung helper", name)
			os.Exit(99)
		})
		h := helpers[name]
		if h == nil {
			fmt.Fprintln(os.Stderr, "unknown helper", name)
			os.Exit(98)
		}
		os.Exit(h())
	}
	os.Exit(m.Run())
}

// serveHelper answers "pid=P gen=G" on the unix socket and echoes UDP
// datagrams prefixed with its PID, across upgrades.
func serveHelper() int {
	u, err := New(Options{PIDFile: os.Getenv(envPIDFile), DrainTimeout: 5 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 10
	}
	defer u.Stop()
	u.HandleSignals()
	ctx := context.Background()
	ln, err := u.Listen(ctx, "unix", os.Getenv(envUnix))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 11
	}
	pc, err := u.ListenPacket(ctx, "udp", os.Getenv(envUDP))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 12
	}
	if err := u.Ready(); err != nil {
		return 13
	}
	go udpEcho(u, pc)
	u.ServeConns(ln, func(ctx context.Context, c net.Conn) {
		fds, _ := os.ReadDir("/proc/self/fd")
		fmt.Fprintf(c, "pid=%d gen=%d fds=%d goroutines=%d\n", os.Getpid(), u.Generation(), len(fds), runtime.NumGoroutine())
	})
	return 0
}

func udpEcho(u *Upgrader, pc net.PacketConn) {
	go func() { <-u.Exit(); pc.Close() }()
	buf := make([]byte, 512)
	prefix := strconv.Itoa(os.Getpid()) + " "
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		pc.WriteTo(append([]byte(prefix), buf[:n]...), from)
	}
}

// readLine dials a unix socket and reads one line.
func readLine(path string) (string, error) {
	c, err := net.DialTimeout("unix", path, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	return bufio.NewReader(c).ReadString('\n')
}
