//go:build unix

package supervisor

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/handoff-go/handoff/fdpass"
	"github.com/handoff-go/handoff/internal/starter"
)

// worker is one started process of Config.Program.
type worker struct {
	proc    *starter.Process
	pid     int
	started time.Time
	log     *slog.Logger

	stopped atomic.Bool // the supervisor stopped it: its exit is no crash
}

// startWorker starts a worker on the bound sockets. Its private
// NOTIFY_SOCKET, the LISTEN_PID shim and its stderr tail are the
// starter's; the supervisor hears of its exit through reaped.
func (s *Supervisor) startWorker() (*worker, error) {
	files := make([]fdpass.Named, len(s.socks))
	for i, sk := range s.socks {
		files[i] = fdpass.Named{Name: sk.l.Name(), Conn: sk.conn}
	}
	s.spawnMu.Lock()
	defer s.spawnMu.Unlock()
	p, err := starter.Start(starter.Config{
		Path:       s.cfg.Program[0],
		Args:       s.cfg.Program[1:],
		Env:        s.cfg.Env,
		Files:      files,
		Shim:       s.cfg.Shim,
		Stdin:      os.Stdin,
		Stdout:     os.Stdout,
		Stderr:     s.cfg.Stderr,
		TailStderr: true,
		ReadyDelay: s.cfg.ReadyDelay,
		Sys:        sysProcAttr(),
		Logger:     s.log,
	})
	if err != nil {
		return nil, fmt.Errorf("supervisor: start %s: %w", strings.Join(s.cfg.Program, " "), err)
	}
	w := &worker{
		proc:    p,
		pid:     p.PID(),
		started: time.Now(),
		log:     s.log.With(slog.Int("worker", p.PID())),
	}
	if s.workers == nil {
		s.workers = make(map[int]bool)
	}
	s.workers[w.pid] = true
	go func() {
		<-p.Exited()
		s.spawnMu.Lock()
		delete(s.workers, w.pid)
		s.spawnMu.Unlock()
		s.reaped(w)
	}()
	return w, nil
}

// terminate sends SIGTERM (once) and SIGKILL after grace unless the worker
// has exited by then. It does not wait.
func (w *worker) terminate(grace time.Duration) {
	w.stopped.Store(true)
	w.proc.Stop(grace)
}

// status returns how an exited worker ended: its exit code, or -1 and the
// signal that killed it.
func (w *worker) status() (code int, sig syscall.Signal) {
	st := w.proc.State()
	if st == nil {
		return -1, 0
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return -1, ws.Signal()
	}
	return st.ExitCode(), 0
}
