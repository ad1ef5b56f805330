//go:build unix

package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/handoff-go/handoff/internal/control"
	"github.com/handoff-go/handoff/internal/procfs"
	"github.com/handoff-go/handoff/pidfile"
)

// upgradeBySignal signals the process the pidfile names and judges the
// upgrade by what it can see. A new generation writes the pidfile once it
// is live, so the pidfile naming another live process is the success; the
// old one may drain for a while longer. A failure is seen only where /proc
// shows the old process's children: a child started after the signal that
// is gone, or one reaped since the signal and never seen, while the
// pidfile still names the old process and no child started since has run
// for 200ms, is the new generation that failed. Otherwise, at the
// deadline, there is no verdict.
func upgradeBySignal(ctx context.Context, path, sigName string, timeout time.Duration) (control.UpgradeResult, int) {
	sigs := map[string]syscall.Signal{"SIGHUP": syscall.SIGHUP, "SIGUSR1": syscall.SIGUSR1, "SIGUSR2": syscall.SIGUSR2}
	sig, ok := sigs[strings.ToUpper(sigName)]
	if !ok {
		fmt.Fprintf(os.Stderr, "handoff upgrade: -signal %q: want SIGHUP, SIGUSR1 or SIGUSR2\n", sigName)
		return control.UpgradeResult{}, exitUsage
	}
	old, err := pidfile.Read(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "handoff upgrade:", err)
		return control.UpgradeResult{}, exitUsage
	}
	if !alive(old) {
		fmt.Fprintf(os.Stderr, "handoff upgrade: %s names PID %d, which is not running\n", path, old)
		return control.UpgradeResult{}, exitUsage
	}
	before := procfs.Children(old)
	reaped0, countsReaps := procfs.Reaped(old)
	res := control.UpgradeResult{OldPID: old, StartedAt: time.Now()}
	if err := syscall.Kill(old, sig); err != nil {
		fmt.Fprintf(os.Stderr, "handoff upgrade: signal PID %d: %v\n", old, err)
		return control.UpgradeResult{}, exitUsage
	}
	took := func() float64 { return float64(time.Since(res.StartedAt).Microseconds()) / 1000 }
	// tookOver reports the success: the pidfile names another live process.
	tookOver := func() bool {
		pid, err := pidfile.Read(path)
		if err != nil || pid == old || !alive(pid) {
			return false
		}
		res.OK, res.NewPID, res.TookMS = true, pid, took()
		fmt.Fprintf(os.Stderr, "handoff upgrade: PID %d took over from PID %d\n", pid, old)
		if alive(old) {
			fmt.Fprintf(os.Stderr, "  PID %d drains what it has in flight and exits\n", old)
		}
		return true
	}
	failed := func(newPID int, reason string) (control.UpgradeResult, int) {
		res.NewPID, res.TookMS, res.Error = newPID, took(), reason
		fmt.Fprintf(os.Stderr, "handoff upgrade: failed; PID %d still serves\n  reason: %s; by signal the reason cannot be known: see the server's log, or use -control\n", old, reason)
		return res, exitFailed
	}
	started := map[int]bool{} // children of old started after the signal
	var goneSince time.Time   // since when a child has come and gone, and none runs
	for {
		if tookOver() {
			return res, exitOK
		}
		for c := range procfs.Children(old) {
			if !before[c] {
				started[c] = true
			}
		}
		// A child started since the signal that is gone, or one reaped
		// since then that came and went between two looks, is the new
		// generation that failed — or a child the old process ran for
		// itself (Go's runtime starts one to probe for pidfd support).
		// So it is the verdict only once no child started since the
		// signal has run for a moment, in which a new generation still
		// starting would have shown itself.
		running, gone := false, 0
		for c := range started {
			if alive(c) {
				running = true
			} else {
				gone = c
			}
		}
		reaped := false
		if n, ok := procfs.Reaped(old); ok && countsReaps {
			reaped = n > reaped0
		}
		switch {
		case running || (gone == 0 && !reaped):
			goneSince = time.Time{}
		case goneSince.IsZero():
			goneSince = time.Now()
		case time.Since(goneSince) > 200*time.Millisecond:
			if tookOver() { // it took over as it exited
				return res, exitOK
			}
			if len(started) == 1 {
				return failed(gone, fmt.Sprintf("the new generation (PID %d) exited before it took over", gone))
			}
			return failed(0, "the new generation exited before it took over")
		}
		if !alive(old) {
			if tookOver() { // the old one exited as the new one took over
				return res, exitOK
			}
			res.TookMS, res.Error = took(), fmt.Sprintf("PID %d exited and no new generation took over", old)
			fmt.Fprintf(os.Stderr, "handoff upgrade: %s: nothing serves\n", res.Error)
			return res, exitFailed
		}
		poll := time.Millisecond // a build that fails at once lives a millisecond or two
		if time.Since(res.StartedAt) > time.Second {
			poll = 10 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			res.TookMS, res.Error = took(), fmt.Sprintf("no verdict within %v", timeout)
			fmt.Fprintf(os.Stderr, "handoff upgrade: no verdict within %v: %s still names PID %d, which serves; the upgrade may still complete.\n"+
				"  By signal the reason cannot be known: see the server's log, or use -control.\n", timeout, path, old)
			return res, exitNoVerdict
		case <-time.After(poll):
		}
	}
}

// alive reports whether pid is running. With /proc, a zombie (exited,
// not yet reaped by its new parent) counts as gone.
func alive(pid int) bool {
	if !procfs.Available() {
		return syscall.Kill(pid, 0) == nil // no /proc: best effort
	}
	st := procfs.State(pid)
	return st != 0 && st != 'Z' && st != 'X'
}
