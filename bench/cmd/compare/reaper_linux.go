package main

import (
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// becomeSubreaper makes this process the one that orphaned descendants
// are re-parented to, instead of PID 1, which on some machines reaps only
// every few seconds: an old generation that has exited is then reaped at
// once and never lingers as a zombie.
func becomeSubreaper() error {
	return os.NewSyscallError("prctl(PR_SET_CHILD_SUBREAPER)", unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0))
}

// reaper collects the exit status of every child and re-parented
// descendant as soon as it exits. While it runs, nothing else in this
// process may wait for a child (os/exec's Wait would find it gone).
type reaper struct {
	stop, done chan struct{}
}

func startReaper() *reaper {
	r := &reaper{stop: make(chan struct{}), done: make(chan struct{})}
	sigs := make(chan os.Signal, 64)
	signal.Notify(sigs, syscall.SIGCHLD)
	go func() {
		defer close(r.done)
		defer signal.Stop(sigs)
		// SIGCHLD is not queued per child: reap everything on each one,
		// and poll too in case one was coalesced away.
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			reapAll()
			select {
			case <-sigs:
			case <-tick.C:
			case <-r.stop:
				reapAll()
				return
			}
		}
	}()
	return r
}

// Stop stops reaping; zombies of processes that exit later stay until
// this process exits.
func (r *reaper) Stop() {
	close(r.stop)
	<-r.done
}

func reapAll() {
	for {
		var ws unix.WaitStatus
		var ru unix.Rusage
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, &ru)
		if err == unix.EINTR {
			continue
		}
		if err != nil || pid <= 0 {
			return // ECHILD: no children; 0: none has exited
		}
		exitCPU.Store(pid, time.Duration(ru.Utime.Nano()+ru.Stime.Nano()))
	}
}
