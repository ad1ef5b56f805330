package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"github.com/handoff-go/handoff/readiness"
	"github.com/handoff-go/handoff/upgrade"
)

// runForeign is runHandoff with Options.ForeignChild: the parent starts
// the next generation through handoff's exec shim, which sets LISTEN_PID
// to the child's own PID, and takes its sd_notify READY=1 as ready. The
// child (the same binary, told apart by LISTEN_PID) is a systemd-style
// program that knows nothing of handoff: see foreignChild.
func runForeign(ctx context.Context, n int) error {
	if os.Getenv("LISTEN_PID") != "" {
		return foreignChild(ctx, n)
	}
	u, err := upgrade.New(upgrade.Options{ForeignChild: true})
	if err != nil {
		return err
	}
	defer u.Stop()
	var r parentReport
	if r.before, err = countFDs(); err != nil {
		return err
	}
	lns, err := listenAll(n, func(addr string) (net.Listener, error) {
		return u.Listen(ctx, "tcp", addr)
	})
	if err != nil {
		return err
	}
	if err := u.Ready(); err != nil {
		return err
	}
	settle()
	r.start = time.Now()
	err = u.Upgrade(ctx)
	r.end = time.Now()
	r.took = r.end.Sub(r.start)
	if err != nil {
		return err
	}
	if r.after, err = countFDs(); err != nil {
		return err
	}
	return finish(r, lns, u.Exit())
}

// foreignChild does what a program written for systemd socket activation
// does (go-systemd's activation.Listeners, then daemon.SdNotify): check
// that LISTEN_PID is its own PID, take LISTEN_FDS listeners from fd 3 on,
// and send READY=1 to NOTIFY_SOCKET. It has no channel to its parent, so
// it learns that the parent exited when its parent PID changes.
func foreignChild(ctx context.Context, n int) error {
	ppid := os.Getppid()
	if pid := os.Getenv("LISTEN_PID"); pid != strconv.Itoa(os.Getpid()) {
		return fmt.Errorf("LISTEN_PID is %s, not this process's PID %d", pid, os.Getpid())
	}
	count, err := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	if err != nil || count != n {
		return fmt.Errorf("LISTEN_FDS is %q, want %d", os.Getenv("LISTEN_FDS"), n)
	}
	for _, k := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
		os.Unsetenv(k)
	}
	lns := make([]net.Listener, 0, n)
	for fd := 3; fd < 3+n; fd++ {
		syscall.CloseOnExec(fd)
		f := os.NewFile(uintptr(fd), "LISTEN_FD_"+strconv.Itoa(fd))
		ln, err := net.FileListener(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("fd %d: %w", fd, err)
		}
		lns = append(lns, ln)
	}
	adopted := time.Now()
	// What go-systemd's daemon.SdNotify does, with handoff's own client.
	notifier, err := readiness.NewNotifier(os.Getenv("NOTIFY_SOCKET"))
	if err != nil || notifier == nil {
		return fmt.Errorf("NOTIFY_SOCKET %q: %v", os.Getenv("NOTIFY_SOCKET"), err)
	}
	if err := notifier.Ready(""); err != nil {
		return err
	}
	err = childReady(ctx, adopted, func(ctx context.Context) error {
		for os.Getppid() == ppid {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Millisecond):
			}
		}
		return nil
	})
	runtime.KeepAlive(lns) // a listener nobody refers to may be closed by its finalizer
	return err
}
