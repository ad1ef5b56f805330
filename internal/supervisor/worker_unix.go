//go:build unix

package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/handoff-go/handoff/fdpass"
	"github.com/handoff-go/handoff/internal/tail"
	"github.com/handoff-go/handoff/readiness"
)

// EnvNotifySocket names the socket a worker sends READY=1 to.
const EnvNotifySocket = "NOTIFY_SOCKET"

// worker is one started process of Config.Program.
type worker struct {
	pid     int
	proc    *os.Process
	started time.Time
	log     *slog.Logger

	stderr     *tail.Buffer
	stderrDone chan struct{} // closed when the stderr pipe reached EOF

	notify    *readiness.NotifyReceiver
	readyOnce sync.Once
	ready     chan struct{} // closed when the worker is ready

	exited chan struct{}    // closed once the worker is reaped
	state  *os.ProcessState // set before exited is closed

	stopped  atomic.Bool // the supervisor stopped it: its exit is no crash
	termOnce sync.Once
}

// startWorker starts a worker on the bound sockets.
func (s *Supervisor) startWorker() (w *worker, err error) {
	s.mu.Lock()
	s.seq++
	seq := s.seq
	s.mu.Unlock()

	// The notify socket lives in the supervisor's private 0700 directory,
	// so only this user can reach it; on Linux the sender's PID is checked
	// as well.
	path := filepath.Join(s.dir, "notify-"+strconv.Itoa(seq))
	nc, err := readiness.ListenNotify(path)
	if err != nil {
		return nil, fmt.Errorf("supervisor: %w", err)
	}
	defer func() {
		if err != nil {
			nc.Close()
		}
	}()

	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("supervisor: stderr pipe: %w", err)
	}
	defer pw.Close() // the worker has its own copy
	defer func() {
		if err != nil {
			pr.Close()
		}
	}()

	// Raw close-on-exec duplicates, so that nothing calls Fd on an
	// os.File sharing the listeners' open file descriptions (which would
	// switch them to blocking mode under the workers' feet).
	files := []uintptr{0, 1, pw.Fd()}
	for _, sk := range s.socks {
		fd, err := fdpass.DupFD(sk.conn)
		if err != nil {
			closeFDs(files[3:])
			return nil, fmt.Errorf("supervisor: %s: %w", sk.l, err)
		}
		files = append(files, uintptr(fd))
	}
	defer closeFDs(files[3:])

	env, err := s.environ(path)
	if err != nil {
		return nil, err
	}
	argv := append(append([]string{}, s.cfg.Shim...), s.cfg.Program...)
	bin := argv[0]
	if len(s.cfg.Shim) == 0 {
		if bin, err = exec.LookPath(bin); err != nil {
			return nil, fmt.Errorf("supervisor: %w", err)
		}
	}
	pid, _, err := syscall.StartProcess(bin, argv, &syscall.ProcAttr{Env: env, Files: files, Sys: sysProcAttr()})
	if err != nil {
		return nil, fmt.Errorf("supervisor: start %s: %w", strings.Join(s.cfg.Program, " "), err)
	}
	proc, err := os.FindProcess(pid)
	if err != nil { // cannot happen on unix
		return nil, fmt.Errorf("supervisor: find started worker %d: %w", pid, err)
	}
	w = &worker{
		pid:        pid,
		proc:       proc,
		started:    time.Now(),
		log:        s.log.With(slog.Int("worker", pid)),
		stderr:     tail.New(4096),
		stderrDone: make(chan struct{}),
		notify:     nc,
		ready:      make(chan struct{}),
		exited:     make(chan struct{}),
	}
	go w.drain(pr, s.cfg.Stderr)
	go w.readNotify()
	go func() {
		w.state, _ = proc.Wait()
		nc.Close()
		close(w.exited)
		s.reaped(w)
	}()
	if d := s.cfg.ReadyDelay; d > 0 {
		go func() {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-t.C:
				w.setReady()
			case <-w.exited:
			}
		}()
	}
	return w, nil
}

// environ returns a worker's environment.
func (s *Supervisor) environ(notifyPath string) ([]string, error) {
	names := make([]fdpass.Named, len(s.socks))
	for i, sk := range s.socks {
		names[i] = fdpass.Named{Name: sk.l.Name()}
	}
	h := fdpass.Handover{Files: names}
	vars, err := h.Environ()
	if err != nil {
		return nil, err
	}
	base := s.cfg.Env
	if base == nil {
		base = os.Environ()
	}
	env := fdpass.StripEnv(base)
	env = dropVar(env, EnvNotifySocket)
	for _, kv := range vars {
		// A foreign program needs only systemd's variables.
		if !strings.HasPrefix(kv, fdpass.EnvHandoff+"=") {
			env = append(env, kv)
		}
	}
	return append(env, EnvNotifySocket+"="+notifyPath), nil
}

func dropVar(env []string, name string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k != name {
			out = append(out, kv)
		}
	}
	return out
}

func closeFDs(fds []uintptr) {
	for _, fd := range fds {
		syscall.Close(int(fd))
	}
}

// drain copies the worker's stderr to out and keeps its tail, for the
// worker's whole life (a full pipe would block it).
func (w *worker) drain(r *os.File, out io.Writer) {
	defer close(w.stderrDone)
	defer r.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			w.stderr.Write(buf[:n])
			out.Write(buf[:n])
		}
		if err != nil {
			return
		}
	}
}

// stderrTail returns the tail of the worker's stderr, waiting briefly for
// the pipe to be read to its end.
func (w *worker) stderrTail() string {
	select {
	case <-w.stderrDone:
	case <-time.After(200 * time.Millisecond): // a grandchild may hold the pipe
	}
	return w.stderr.String()
}

func (w *worker) setReady() { w.readyOnce.Do(func() { close(w.ready) }) }

// readNotify reads sd_notify datagrams until the socket is closed.
func (w *worker) readNotify() {
	for {
		n, err := w.notify.Receive(context.Background())
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				w.log.Warn("supervisor: reading the notify socket", slog.Any("error", err))
			}
			return
		}
		if readiness.KnowsSender && n.PID != w.pid {
			w.log.Warn("supervisor: ignored a notify message from another process: only the worker itself may send READY=1 (exec the server, do not fork it)",
				slog.Int("sender", n.PID))
			continue
		}
		if st, ok := n.Value("STATUS"); ok {
			w.log.Info("supervisor: worker status", slog.String("status", readiness.Printable(st, readiness.MaxStatus)))
		}
		if v, _ := n.Value("READY"); v == "1" {
			w.setReady()
		}
	}
}

// terminate sends SIGTERM (once) and SIGKILL after grace unless the worker
// has exited by then. It does not wait.
func (w *worker) terminate(grace time.Duration) {
	w.termOnce.Do(func() {
		w.stopped.Store(true)
		w.proc.Signal(syscall.SIGTERM)
		go func() {
			t := time.NewTimer(grace)
			defer t.Stop()
			select {
			case <-w.exited:
			case <-t.C:
				w.log.Warn("supervisor: worker did not exit in time after SIGTERM; killing it", slog.Duration("after", grace))
				w.proc.Kill()
			}
		}()
	})
}

// status returns how an exited worker ended: its exit code, or -1 and the
// signal that killed it.
func (w *worker) status() (code int, sig syscall.Signal) {
	if w.state == nil {
		return -1, 0
	}
	if ws, ok := w.state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return -1, ws.Signal()
	}
	return w.state.ExitCode(), 0
}

// how describes how an exited worker ended.
func (w *worker) how() string {
	code, sig := w.status()
	if sig != 0 {
		return "by signal " + sig.String()
	}
	return "with status " + strconv.Itoa(code)
}
