// Command reuseport is the benchmark's SO_REUSEPORT server: it restarts
// the way the Rust crate axum_graceful_restart does, without passing any
// socket. On SIGHUP it starts the binary now at the path it was started
// with; the new process binds the same address itself with SO_REUSEPORT,
// starts serving, writes the pidfile and says "ready" over a pipe; only
// then does the old process shut down gracefully (http.Server.Shutdown:
// close its listener, close idle connections, wait for active ones).
//
// Each SO_REUSEPORT socket has its own accept queue, so connections the
// kernel had queued on the old socket when it closes are reset: the cost
// this mechanism is measured for.
//
//	go build -ldflags "-X main.version=v2" -o server ./servers/reuseport
//	./server -addr 127.0.0.1:8080 -pidfile app.pid
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/handoff-go/handoff/bench/servers/internal/hello"
	"github.com/handoff-go/handoff/pidfile"
)

// wrapTLS serves HTTPS with -tls-cert and -tls-key.
var wrapTLS = hello.TLSFlags()

// version is set at build time with -ldflags "-X main.version=v2".
var version = "dev"

const (
	// readyEnv names the descriptor on which a new process says "ready".
	readyEnv = "BENCH_REUSEPORT_READY_FD"
	// shutdownTimeout bounds the old process's graceful shutdown.
	shutdownTimeout = 30 * time.Second
	// startTimeout bounds how long a new process may take to be ready.
	startTimeout = time.Minute
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "address to listen on")
	pidFile := flag.String("pidfile", "", "pidfile naming the live process (empty: none)")
	flag.Parse()
	log.SetPrefix(fmt.Sprintf("reuseport server %s pid %d: ", version, os.Getpid()))
	if err := run(*addr, *pidFile); err != nil {
		log.Fatal(err)
	}
}

func run(addr, pidFile string) error {
	// Resolved now so the new process can be started from the same path
	// after the working directory or the file changed.
	self, err := filepath.Abs(os.Args[0])
	if err != nil {
		return err
	}
	// Subscribe before saying ready, so that a signal sent as soon as the
	// pidfile names this process is not lost.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)

	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		})
		if err != nil {
			return err
		}
		return os.NewSyscallError("setsockopt", serr)
	}}
	ln, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		return err
	}
	if ln, err = wrapTLS(ln); err != nil {
		return err
	}
	srv := hello.Server(version)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	if pidFile != "" {
		if err := pidfile.Write(pidFile, os.Getpid()); err != nil {
			return err
		}
	}
	if err := notifyReady(); err != nil {
		return err
	}

	for {
		select {
		case err := <-served:
			return err
		case sig := <-sigs:
			if sig != syscall.SIGHUP {
				return shutdown(srv)
			}
			if err := startNext(self); err != nil {
				log.Println("upgrade failed, still serving:", err)
				continue
			}
			return shutdown(srv)
		}
	}
}

// notifyReady tells the process that started this one, if any, that this
// one serves.
func notifyReady() error {
	v := os.Getenv(readyEnv)
	if v == "" {
		return nil
	}
	os.Unsetenv(readyEnv)
	var fd int
	if _, err := fmt.Sscan(v, &fd); err != nil {
		return fmt.Errorf("%s=%q: %w", readyEnv, v, err)
	}
	f := os.NewFile(uintptr(fd), "ready")
	defer f.Close()
	_, err := f.WriteString("ready\n")
	return err
}

// startNext starts the binary at path with this process's arguments and
// waits until it says it is ready. On failure the new process is killed.
func startNext(path string) error {
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	cmd := exec.Command(path, os.Args[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.ExtraFiles = []*os.File{w} // fd 3
	cmd.Env = append(os.Environ(), readyEnv+"=3")
	err = cmd.Start()
	w.Close()
	if err != nil {
		return err
	}
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(r).ReadString('\n')
		line <- s
	}()
	select {
	case s := <-line:
		if strings.TrimSpace(s) == "ready" {
			return nil // the new process lives on; it outlives this one
		}
		err = errors.New("new process exited before it was ready")
	case <-time.After(startTimeout):
		err = fmt.Errorf("new process not ready after %v", startTimeout)
	}
	cmd.Process.Kill()
	cmd.Wait()
	return fmt.Errorf("pid %d: %w", cmd.Process.Pid, err)
}

// shutdown stops accepting and drains gracefully.
func shutdown(srv *http.Server) error {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	return srv.Shutdown(ctx)
}
