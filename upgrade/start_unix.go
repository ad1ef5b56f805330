//go:build unix

package upgrade

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/handoff-go/handoff/fdpass"
	"github.com/handoff-go/handoff/internal/tail"
	"github.com/handoff-go/handoff/readiness"
)

// start launches the child with the files handed over. Everything it
// opened is closed again on failure.
//
// It starts the process with raw descriptors (syscall.StartProcess)
// rather than os/exec: ExtraFiles wants *os.File values, and wrapping a
// thousand duplicated sockets in *os.File registers each with the
// runtime's poller, which doubles the cost of a large hand-over.
func (u *Upgrader) start(files []*handed) (c *child, err error) {
	fail := func(err error) (*child, error) {
		return nil, &ChildError{Stage: StageStart, ExitCode: -1, Err: err}
	}
	var toClose []int // our copies of what the child gets
	defer func() {
		for _, fd := range toClose {
			syscall.Close(fd)
		}
	}()
	dupOr := func(f *os.File, fallback string) (int, error) {
		if fd, err := fdpass.DupFD(f); err == nil {
			return fd, nil
		}
		return syscall.Open(fallback, syscall.O_RDWR|syscall.O_CLOEXEC, 0)
	}
	stdin, err := syscall.Open(os.DevNull, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return fail(os.NewSyscallError("open "+os.DevNull, err))
	}
	toClose = append(toClose, stdin)
	stdout, err := dupOr(os.Stdout, os.DevNull)
	if err != nil {
		return fail(fmt.Errorf("stdout: %w", err))
	}
	toClose = append(toClose, stdout)
	// The child's stderr goes through a pipe until it is ready, so that a
	// failed child's last words can be reported; at Ready it switches to
	// this process's own stderr, handed over as a control file.
	origStderr, err := dupOr(os.Stderr, os.DevNull)
	if err != nil {
		return fail(fmt.Errorf("stderr: %w", err))
	}
	toClose = append(toClose, origStderr)
	if u.opts.ForeignChild {
		return u.startForeign(files, []uintptr{uintptr(stdin), uintptr(stdout), uintptr(origStderr)})
	}
	pr, pwFD, err := stderrPipe()
	if err != nil {
		return fail(fmt.Errorf("stderr pipe: %w", err))
	}
	toClose = append(toClose, pwFD)
	defer func() {
		if err != nil {
			pr.Close()
		}
	}()

	attr := &syscall.ProcAttr{Dir: u.dir, Files: []uintptr{uintptr(stdin), uintptr(stdout), uintptr(pwFD)}}
	h := fdpass.Handover{Meta: map[string]string{
		metaGen:  strconv.Itoa(u.generation + 1),
		metaPPID: strconv.Itoa(os.Getpid()),
		metaGo:   "1",
	}}
	if u.sd != nil {
		h.Meta[metaNotify] = "1"
	}
	fds, err := dupFiles(files, &h)
	toClose = append(toClose, fds...)
	if err != nil {
		return fail(err)
	}
	for _, fd := range fds {
		attr.Files = append(attr.Files, uintptr(fd))
	}
	ctl, childCtl, err := readiness.Pair()
	if err != nil {
		return fail(err)
	}
	defer childCtl.Close()
	defer func() {
		if err != nil {
			ctl.Close()
		}
	}()
	childCtlFD, err := fdpass.DupFD(childCtl)
	if err != nil {
		return fail(err)
	}
	toClose = append(toClose, childCtlFD)
	keepFD, err := fdpass.DupFD(pr)
	if err != nil {
		return fail(err)
	}
	toClose = append(toClose, keepFD)
	h.Control = []fdpass.Named{{Name: ctlReady}, {Name: ctlStderr}, {Name: ctlStderrPipe}}
	attr.Files = append(attr.Files, uintptr(childCtlFD), uintptr(origStderr), uintptr(keepFD))
	// Older generations still alive, so the new one can count them.
	for _, e := range u.aliveElders() {
		fd, err := fdpass.DupFD(e.ctl)
		if err != nil {
			continue // it exited and its channel was closed meanwhile
		}
		toClose = append(toClose, fd)
		h.Control = append(h.Control, fdpass.Named{Name: ctlElderPrefix + strconv.Itoa(e.pid)})
		attr.Files = append(attr.Files, uintptr(fd))
	}
	env, err := h.Environ()
	if err != nil {
		return fail(err)
	}
	attr.Env = append(u.childEnv(), env...)

	pid, _, err := syscall.StartProcess(u.path, u.args, attr)
	if err != nil {
		return fail(fmt.Errorf("start %s: %w", u.path, err))
	}
	c = watchChild(pid, ctl, tail.New(4096))
	go func() {
		defer close(c.stderrDone)
		defer pr.Close()
		// Read to the end whatever happens to Options.Stderr: a pipe with
		// no reader would kill the child with SIGPIPE.
		io.Copy(io.MultiWriter(&bestEffort{w: u.opts.Stderr}, c.stderr), pr)
	}()
	return c, nil
}

// reserveFDs grows this process's descriptor table, now, to fit a copy
// of n handed-over files and the control files beside the descriptors
// open. Growing it during an upgrade instead, when the copies for the child
// go past its size, stalls for milliseconds in a multi-threaded process
// (the kernel waits for an RCU grace period): measured 1-9 ms at 1000
// sockets. The table never shrinks, so one probe descriptor at the far
// end, closed at once, is enough.
func reserveFDs(n int) {
	if n < 64 {
		return // the table a process starts with fits these
	}
	low, err := unix.FcntlInt(0, unix.F_DUPFD_CLOEXEC, 0) // the lowest free descriptor
	if err != nil {
		return
	}
	unix.Close(low)
	if fd, err := unix.FcntlInt(0, unix.F_DUPFD_CLOEXEC, low+2*n+64); err == nil {
		unix.Close(fd)
	}
}

// watchChild returns the child started as pid, with ctl our end of its
// readiness channel and stderr the buffer its stderr tail goes to, and
// reaps it when it exits. The caller closes stderrDone.
func watchChild(pid int, ctl *os.File, stderr *tail.Buffer) *child {
	proc, _ := os.FindProcess(pid) // cannot fail on unix; the child is ours until reaped
	c := &child{
		proc:       proc,
		pid:        pid,
		ctl:        ctl,
		exited:     make(chan struct{}),
		stderr:     stderr,
		stderrDone: make(chan struct{}),
	}
	go func() {
		// Fails only if something else reaped the child (SIGCHLD ignored,
		// a reaper in PID 1): await then reports an unknown exit status.
		c.state, c.waitErr = proc.Wait()
		close(c.exited)
	}()
	return c
}

// dupFiles duplicates the files handed over and names them in h. It
// returns the duplicates made, also on failure.
func dupFiles(files []*handed, h *fdpass.Handover) (fds []int, err error) {
	for _, f := range files {
		fd, err := fdpass.DupFD(f.conn)
		if err != nil {
			return fds, fmt.Errorf("hand over %q (was it closed before Exit?): %w", f.name, err)
		}
		fds = append(fds, fd)
		h.Files = append(h.Files, fdpass.Named{Name: f.name})
	}
	return fds, nil
}

// stderrPipe returns a pipe for the child's stderr: the read end for us,
// non-blocking and close-on-exec; the write end for the child, blocking
// (a program it starts inherits it, and a Go child's os.Stderr must not
// be registered with its poller, since Ready replaces fd 2).
func stderrPipe() (r *os.File, w int, err error) {
	var p [2]int
	syscall.ForkLock.RLock()
	err = syscall.Pipe(p[:])
	if err == nil {
		syscall.CloseOnExec(p[0])
		syscall.CloseOnExec(p[1])
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return nil, -1, os.NewSyscallError("pipe", err)
	}
	if err := syscall.SetNonblock(p[0], true); err != nil {
		syscall.Close(p[0])
		syscall.Close(p[1])
		return nil, -1, os.NewSyscallError("setnonblock", err)
	}
	return os.NewFile(uintptr(p[0]), "child-stderr"), p[1], nil
}

// bestEffort forwards writes to w until w fails once, and never fails.
type bestEffort struct {
	w      io.Writer
	failed bool
}

func (b *bestEffort) Write(p []byte) (int, error) {
	if !b.failed {
		if _, err := b.w.Write(p); err != nil {
			b.failed = true
		}
	}
	return len(p), nil
}

// childEnv is the environment a child starts with: u.env, with the
// service manager's variables as this process uses them, whatever
// Options.Env says, and without WATCHDOG_PID, which names this process.
func (u *Upgrader) childEnv() []string {
	env := make([]string, 0, len(u.env)+2)
	for _, kv := range u.env {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case envWatchdogPID, envWatchdogUsec, envNotifySocket:
			continue
		}
		env = append(env, kv)
	}
	if u.sd != nil {
		env = append(env, envNotifySocket+"="+u.sd.Socket())
	}
	if u.watchdog > 0 {
		env = append(env, envWatchdogUsec+"="+strconv.FormatInt(u.watchdog.Microseconds(), 10))
	}
	return env
}
