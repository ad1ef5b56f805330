package main

// How an upgrade is measured, and why this way.
//
// Neither library lets one process upgrade twice: after a successful
// Upgrade a handoff Upgrader refuses the next with ErrHandedOver and
// keeps the new generation's readiness channel open until the process
// exits (that is how the child learns its parent is gone), and tableflip
// allows a single Upgrader per process. A loop of fresh Upgraders in one
// process would leak that channel at every iteration (only the package's
// own benchmark can close it) and cannot work for tableflip at all.
//
// So every sample is one whole, short life: the driver (this program,
// without a role) starts a parent process per sample; the parent listens
// on n loopback addresses, says ready, times one Upgrade() call to its
// return, closes its listeners and exits. The child its library started
// adopts the listeners, says ready, reports, and waits for its parent to
// exit before it exits itself, so it never competes with the measurement.
// The driver is a subreaper (PR_SET_CHILD_SUBREAPER): the orphaned child
// is reparented to it and reaped by it, and the driver checks that no
// process is left and that its own descriptor count stays flat.
//
// Each sample therefore times a cold upgrade, in a process that never
// upgraded before: which is every upgrade a real server makes. (The
// library's in-package BenchmarkUpgrade loops in one warm process.) The
// floor is timed the same way: a parent that forks and execs the same
// binary, with no listeners or with the n listeners inherited, and waits
// for the child's first byte. Within a descriptor count the mechanisms
// take turns, in rotating order, so that drift in the machine's load
// spreads over all of them.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// sampleTimeout bounds one sample; past it the parent's process group is
// killed and the run fails.
const sampleTimeout = 90 * time.Second

// sample is what one parent and its child reported.
type sample struct {
	took   time.Duration
	kept   int          // see Series.ParentKept
	child  *childReport // nil from the bare child
	phases phases       // with a child report
	reaped bool         // the driver reaped the child
}

// mechanism is one column of the latency table.
type mechanism struct {
	name string
	role string
	fds  func(n int) int
	into func(p *LatencyPoint) *Series
}

var mechanisms = []mechanism{
	{"exec", roleExec, func(int) int { return 0 }, func(p *LatencyPoint) *Series { return &p.Exec }},
	{"exec+fds", roleExec, func(n int) int { return n }, func(p *LatencyPoint) *Series { return &p.ExecFDs }},
	{"handoff", roleHandoff, func(n int) int { return n }, func(p *LatencyPoint) *Series { return &p.Handoff }},
	{"tableflip", roleTableflip, func(n int) int { return n }, func(p *LatencyPoint) *Series { return &p.Tableflip }},
	{"handoff foreign child", roleForeign, func(n int) int { return n }, func(p *LatencyPoint) *Series { return &p.Foreign }},
}

// isolateFDs marks every descriptor this process inherited above stderr
// close-on-exec, so that descriptors leaked into it by whatever started
// it do not reach the processes it measures and skew their counts.
func isolateFDs() error {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return err
	}
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC) // fails only for the directory's own, closed by now
		}
	}
	return nil
}

// becomeSubreaper makes orphaned descendants this process's children.
func becomeSubreaper() error {
	return os.NewSyscallError("prctl(PR_SET_CHILD_SUBREAPER)", unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0))
}

// measureLatency runs iterations samples (after warmup unrecorded ones)
// of every mechanism for each count in counts.
func measureLatency(ctx context.Context, counts []int, iterations, warmup int, h *Hygiene, progress io.Writer) ([]LatencyPoint, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	fds, err := countFDs()
	if err != nil {
		return nil, err
	}
	h.DriverFDs.Add(fds)
	var points []LatencyPoint
	for _, n := range counts {
		start := time.Now()
		p := LatencyPoint{FDs: n}
		took := make([][]time.Duration, len(mechanisms))
		ph := make([][]phases, len(mechanisms))
		for round := range warmup + iterations {
			for k := range mechanisms {
				i := (k + round) % len(mechanisms)
				m := mechanisms[i]
				s, err := runSample(ctx, self, m.role, m.fds(n))
				if err != nil {
					return nil, fmt.Errorf("%s with %d fds: %w", m.name, m.fds(n), err)
				}
				h.Samples++
				if s.reaped {
					h.Reaped++
				}
				if fds, err := countFDs(); err == nil {
					h.DriverFDs.Add(fds)
				}
				if round < warmup {
					continue
				}
				took[i] = append(took[i], s.took)
				dst := m.into(&p)
				if s.child != nil {
					dst.ChildFDs.Add(s.child.fds)
					ph[i] = append(ph[i], s.phases)
				}
				dst.ParentKept.Add(s.kept)
			}
		}
		for i, m := range mechanisms {
			dst := m.into(&p)
			dst.Summary = Summarize(took[i])
			if len(ph[i]) > 0 {
				dst.Phases = summarizePhases(ph[i])
			}
		}
		left, err := childrenLeft()
		if err != nil {
			return nil, err
		}
		h.ChildrenLeft += left
		points = append(points, p)
		fmt.Fprintf(progress, "scaling: %4d fds: %d samples of %d mechanisms in %v\n",
			n, iterations, len(mechanisms), time.Since(start).Round(time.Millisecond))
	}
	return points, nil
}

// runSample starts a parent in role with n listeners and collects its
// report and its child's, then reaps both.
func runSample(ctx context.Context, self, role string, n int) (sample, error) {
	var s sample
	r, w, err := os.Pipe()
	if err != nil {
		return s, err
	}
	defer r.Close()
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), envRole+"="+role, envFDs+"="+strconv.Itoa(n))
	cmd.Stdout = w // a file: no copying goroutine that would wait for the grandchild
	cmd.Stderr = os.Stderr
	// Its own process group, to kill the parent and its child together;
	// not its own session, which would give it its own CPU share.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	w.Close()
	if err != nil {
		return s, err
	}
	pgid := cmd.Process.Pid
	watchdog := context.AfterFunc(ctx, func() { syscall.Kill(-pgid, syscall.SIGKILL) })
	defer watchdog()
	timer := time.AfterFunc(sampleTimeout, func() { syscall.Kill(-pgid, syscall.SIGKILL) })
	defer timer.Stop()

	// EOF once the parent and its child have both exited.
	var lines []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	waitErr := cmd.Wait()
	p, c, err := parseLines(lines)
	s.took, s.kept, s.child = p.took, p.closed-p.before, c
	if c != nil {
		s.phases = splitPhases(p, *c)
		reaped, rerr := reapOrphan(c.pid)
		s.reaped = reaped
		err = errors.Join(err, rerr)
	}
	if waitErr != nil {
		return s, fmt.Errorf("parent: %w (reported %q)", waitErr, lines)
	}
	return s, err
}

// reapOrphan reaps a child that outlived its parent and was reparented to
// this subreaper. It reports false if someone else reaped it (its own
// parent, before exiting), and fails if it is alive and not ours.
func reapOrphan(pid int) (bool, error) {
	var ws unix.WaitStatus
	_, err := wait4(pid, &ws)
	switch {
	case err == nil && (!ws.Exited() || ws.ExitStatus() != 0):
		return true, fmt.Errorf("child %d ended with status %v", pid, ws)
	case err == nil:
		return true, nil
	case errors.Is(err, unix.ECHILD) && !alive(pid):
		return false, nil
	}
	return false, fmt.Errorf("child %d: %w", pid, err)
}

// childrenLeft counts this process's children, live or zombie, from /proc.
func childrenLeft() (int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	self := strconv.Itoa(os.Getpid())
	n := 0
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // gone meanwhile
		}
		// After the parenthesized name: state ppid ...
		if i := strings.LastIndexByte(string(b), ')'); i >= 0 {
			if f := strings.Fields(string(b[i+1:])); len(f) > 1 && f[1] == self {
				n++
			}
		}
	}
	return n, nil
}
