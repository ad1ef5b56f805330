//go:build unix

package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/handoff-go/handoff/pidfile"
)

// upgradeBySignal signals the process the pidfile names and judges the
// upgrade by what it can see: the pidfile naming a new live process and
// the old one gone.
func upgradeBySignal(ctx context.Context, path, sigName string, timeout time.Duration) int {
	sigs := map[string]syscall.Signal{"SIGHUP": syscall.SIGHUP, "SIGUSR1": syscall.SIGUSR1, "SIGUSR2": syscall.SIGUSR2}
	sig, ok := sigs[strings.ToUpper(sigName)]
	if !ok {
		fmt.Fprintf(os.Stderr, "handoff upgrade: -signal %q: want SIGHUP, SIGUSR1 or SIGUSR2\n", sigName)
		return exitUsage
	}
	old, err := pidfile.Read(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "handoff upgrade:", err)
		return exitUsage
	}
	if !alive(old) {
		fmt.Fprintf(os.Stderr, "handoff upgrade: %s names PID %d, which is not running\n", path, old)
		return exitUsage
	}
	if err := syscall.Kill(old, sig); err != nil {
		fmt.Fprintf(os.Stderr, "handoff upgrade: signal PID %d: %v\n", old, err)
		return exitUsage
	}
	for {
		if pid, err := pidfile.Read(path); err == nil && pid != old && alive(pid) && !alive(old) {
			fmt.Printf("%d\n", pid)
			fmt.Fprintf(os.Stderr, "handoff upgrade: PID %d took over from PID %d\n", pid, old)
			return exitOK
		}
		select {
		case <-ctx.Done():
			pid, _ := pidfile.Read(path)
			if pid == old && alive(old) {
				fmt.Fprintf(os.Stderr, "handoff upgrade: failed: no new generation took over within %v; PID %d still serves.\n"+
					"  The reason cannot be known by signal: see the server's log, or use -control.\n", timeout, old)
				return exitFailed
			}
			fmt.Fprintf(os.Stderr, "handoff upgrade: unclear after %v: the pidfile names PID %d; PID %d alive: %v (an old generation may still be draining)\n", timeout, pid, old, alive(old))
			return exitFailed
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// alive reports whether pid is running. With /proc, a zombie (exited,
// not yet reaped by its new parent) counts as gone.
func alive(pid int) bool {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		return syscall.Kill(pid, 0) == nil // no /proc: best effort
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	if i := strings.LastIndexByte(string(b), ')'); i >= 0 && i+2 < len(b) {
		return b[i+2] != 'Z' && b[i+2] != 'X'
	}
	return true
}
