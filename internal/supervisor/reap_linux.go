//go:build linux

package supervisor

import (
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/handoff-go/handoff/internal/procfs"
)

// reapOrphans makes this process a child subreaper and reaps, at every
// SIGCHLD and every second, each child that has exited and is not a
// worker: a process a worker started and left behind. It returns the
// function that stops it.
func (s *Supervisor) reapOrphans() (stop func()) {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		s.log.Warn("supervisor: cannot be a child subreaper; orphans of workers go to init", slog.Any("error", os.NewSyscallError("prctl", err)))
	}
	chld := make(chan os.Signal, 1)
	signal.Notify(chld, syscall.SIGCHLD)
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-chld:
			case <-t.C:
			}
			s.reapOnce()
		}
	}()
	return func() {
		signal.Stop(chld)
		close(done)
		<-finished
		s.reapOnce()
	}
}

// reapOnce reaps the children that are zombies and not workers.
func (s *Supervisor) reapOnce() {
	s.spawnMu.Lock()
	defer s.spawnMu.Unlock()
	for pid := range procfs.Children(os.Getpid()) {
		if s.workers[pid] || procfs.State(pid) != 'Z' {
			continue
		}
		var ws syscall.WaitStatus
		if n, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil); err == nil && n == pid {
			s.log.Debug("supervisor: reaped an orphan", slog.Int("pid", pid))
		}
	}
}
