package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"
)

// The driver re-executes this binary in a role named by envRole, with
// envFDs listening sockets. A role's process runs it and exits before the
// driver's flags are parsed.
const (
	envRole = "HANDOFF_SCALING_ROLE"
	envFDs  = "HANDOFF_SCALING_FDS"
)

// Roles. The handoff and tableflip roles are both the measuring parent
// and, re-executed by their library, the child: each library tells which
// it is (HasParent), and both pass the environment on unchanged.
const (
	roleHandoff   = "handoff"
	roleTableflip = "tableflip"
	roleForeign   = "foreign"    // handoff with Options.ForeignChild; see runForeign
	roleExec      = "exec"       // parent of a bare child: the floor
	roleBareChild = "bare-child" // writes one byte to fd 3 and exits
)

// roleTimeout bounds everything a role process does; a hung one says so
// and exits, so a run never hangs on a broken library or machine.
const roleTimeout = 60 * time.Second

// mainStart is when main began, for the child's report.
var mainStart time.Time

var roles = map[string]func(ctx context.Context, n int) error{
	roleHandoff:   runHandoff,
	roleTableflip: runTableflip,
	roleForeign:   runForeign,
	roleExec:      runExec,
	roleBareChild: runBareChild,
}

// dispatch runs the role named in the environment, if there is one, and
// exits; otherwise it returns.
func dispatch() {
	mainStart = time.Now()
	name := os.Getenv(envRole)
	if name == "" {
		return
	}
	fail := func(err error) {
		fmt.Fprintf(os.Stderr, "scaling: role %s (pid %d): %v\n", name, os.Getpid(), err)
		os.Exit(1)
	}
	role := roles[name]
	if role == nil {
		fail(errors.New("unknown role"))
	}
	n, err := strconv.Atoi(os.Getenv(envFDs))
	if err != nil && name != roleBareChild {
		fail(fmt.Errorf("%s: %w", envFDs, err))
	}
	time.AfterFunc(roleTimeout, func() { fail(errors.New("watchdog: still running after " + roleTimeout.String())) })
	ctx, cancel := context.WithTimeout(context.Background(), roleTimeout)
	err = role(ctx, n)
	cancel()
	if err != nil {
		fail(err)
	}
	os.Exit(0)
}

// listenAddr is the address of the i-th handed-over listener. Both
// libraries name a listener by the address asked for, so each needs its
// own: distinct loopback addresses (all of 127/8 is local on Linux), port 0.
func listenAddr(i int) string {
	return fmt.Sprintf("127.1.%d.%d:0", i/250, i%250+1)
}

// listenAll opens n listeners with listen, closing them all on failure.
func listenAll(n int, listen func(addr string) (net.Listener, error)) ([]net.Listener, error) {
	lns := make([]net.Listener, 0, n)
	for i := range n {
		ln, err := listen(listenAddr(i))
		if err != nil {
			closeAll(lns)
			return nil, fmt.Errorf("listener %d of %d: %w", i+1, n, err)
		}
		lns = append(lns, ln)
	}
	return lns, nil
}

func closeAll(lns []net.Listener) {
	for _, ln := range lns {
		ln.Close()
	}
}

// settle pauses a parent between Ready and the timed upgrade, the same
// in every role, so that what Ready set going in the background (the
// library's goroutines, the scheduler) has run before the clock starts.
func settle() { time.Sleep(5 * time.Millisecond) }

// finish closes the parent's listeners and reports r, once its library
// has finished the upgrade (exited is closed; nil for none) and its
// descriptor count has settled.
func finish(r parentReport, lns []net.Listener, exited <-chan struct{}) error {
	closeAll(lns)
	if exited != nil {
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			return errors.New("the library did not close its Exit channel after the upgrade")
		}
	}
	var err error
	if r.closed, err = steadyFDs(); err != nil {
		return err
	}
	_, err = os.Stdout.WriteString(r.String())
	return err
}

// steadyFDs counts this process's descriptors once the count has held
// still for a few milliseconds (up to half a second): a library may
// still be closing what it used in a goroutine of its own after Upgrade
// returned (handoff's copy of the child's stderr pipe, say).
func steadyFDs() (int, error) {
	n, err := countFDs()
	deadline := time.Now().Add(500 * time.Millisecond)
	for err == nil && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
		var m int
		if m, err = countFDs(); m == n {
			break
		}
		n = m
	}
	return n, err
}

// childReady reports a ready child, called as its library's Ready
// returned; it had adopted its listeners at adopted. Then it waits (through wait, its library's WaitForParent) until
// the parent has exited, so that the child never competes with the
// measurement and the driver, a subreaper, reaps it.
func childReady(ctx context.Context, adopted time.Time, wait func(context.Context) error) error {
	returned := time.Now()
	fds, err := countFDs()
	if err != nil {
		return err
	}
	r := childReport{pid: os.Getpid(), fds: fds, main: mainStart, adopted: adopted, returned: returned}
	if _, err := os.Stdout.WriteString(r.String()); err != nil {
		return err
	}
	if err := wait(ctx); err != nil {
		return fmt.Errorf("wait for the parent to exit: %w", err)
	}
	return nil
}
