//go:build unix

package upgrade

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/handoff-go/handoff/internal/fds"
	"github.com/handoff-go/handoff/internal/tail"
	"github.com/handoff-go/handoff/internal/wire"
)

// fromDescriptor reports whether prog can be started from its descriptor
// (Linux, through /proc/self/fd: execveat needs a fork of our own), so
// that the file started is the file opened. A script cannot: its
// interpreter opens it again by the name it is given.
func fromDescriptor(prog *os.File) bool {
	if runtime.GOOS != "linux" || isScript(prog) {
		return false
	}
	_, err := os.Stat("/proc/self/fd")
	return err == nil
}

// isScript reports whether f starts with "#!".
func isScript(f *os.File) bool {
	var b [2]byte
	n, _ := f.ReadAt(b[:], 0)
	return n == 2 && b == [2]byte{'#', '!'}
}

// startHandoff starts a handoff program as the next generation. Everything
// it opened is closed again on failure.
//
// It starts the process with raw descriptors (syscall.StartProcess)
// rather than os/exec: ExtraFiles wants *os.File values, and wrapping a
// thousand duplicated sockets in *os.File registers each with the
// runtime's poller, which doubles the cost of a large hand-over.
func (u *Upgrader) startHandoff(l launch, files []*handed, elders []*elder) (c *child, err error) {
	fail := func(err error) (*child, error) {
		return nil, &ChildError{Stage: StageStart, Err: err}
	}
	var toClose []int // what the child gets and this process does not keep
	defer func() {
		for _, fd := range toClose {
			syscall.Close(fd)
		}
	}()
	dupOr := func(f *os.File, fallback string) (int, error) {
		if fd, err := fds.Dup(f); err == nil {
			return fd, nil
		}
		return syscall.Open(fallback, syscall.O_RDWR|syscall.O_CLOEXEC, 0)
	}
	// What is made new for the child, most often ahead (stockKit). The
	// child's stderr goes through the kit's pipe until the parent says go,
	// so that a failed child's last words can be reported; then it
	// switches to this process's own stderr, handed over as a control
	// file. Of the kit this process keeps the pipe's read end and its ends
	// of the channels if the child starts, and nothing if it does not.
	k, err := u.takeKit()
	if err != nil {
		return fail(err)
	}
	defer func() {
		if err == nil {
			k.stderrR, k.ctl, k.conns = nil, nil, nil
		}
		k.close()
	}()
	stdout, err := dupOr(os.Stdout, os.DevNull)
	if err != nil {
		return fail(fmt.Errorf("stdout: %w", err))
	}
	toClose = append(toClose, stdout)
	origStderr, err := dupOr(os.Stderr, os.DevNull)
	if err != nil {
		return fail(fmt.Errorf("stderr: %w", err))
	}
	toClose = append(toClose, origStderr)
	pr, ctl := k.stderrR, k.ctl

	// Sized for a thousand handed-over files and what follows them.
	attr := &syscall.ProcAttr{Dir: u.next.dir, Files: make([]uintptr, 3, 3+len(files)+8+len(elders))}
	attr.Files[0], attr.Files[1], attr.Files[2] = uintptr(k.stdin), uintptr(stdout), uintptr(k.stderrW)
	h := wire.Handover{Meta: map[string]string{
		wire.MetaGen:   strconv.Itoa(l.gen),
		wire.MetaPPID:  strconv.Itoa(os.Getpid()),
		wire.MetaGo:    "1",
		wire.MetaProto: strconv.Itoa(wire.Version),
		wire.MetaPath:  wire.EscapeMeta(u.next.path),
	}}
	if u.sd.active() {
		h.Meta[wire.MetaNotify] = "1"
	}
	for k, v := range l.meta {
		h.Meta[k] = v
	}
	// The files handed over go as they are (see start below).
	first := len(attr.Files)
	handedConns := connsOf(files)
	h.Files = make([]string, len(files))
	for i, f := range files {
		h.Files[i] = f.name
	}
	attr.Files = attr.Files[:first+len(files)] // set by start
	// The files this upgrade made or opened for the child go as they
	// are, not as copies (a dup and a close fewer each): nothing else
	// closes them, and they stay open here until it has started.
	keepFD, err := ownFD(pr)
	if err != nil {
		return fail(err)
	}
	h.Control = []string{wire.CtlReady, wire.CtlStderr, wire.CtlStderrPipe}
	attr.Files = append(attr.Files, uintptr(k.childCtl), uintptr(origStderr), uintptr(keepFD))
	// What the child reads at start: the application's state, the TLS
	// session ticket keys.
	if len(l.sections) > 0 {
		f, err := wire.WriteCarry(l.sections)
		if err != nil {
			return fail(err)
		}
		defer f.Close()
		fd, err := ownFD(f)
		if err != nil {
			return fail(err)
		}
		h.Control = append(h.Control, wire.CtlCarry)
		attr.Files = append(attr.Files, uintptr(fd))
	}
	// The connection channel, where the platform has one: a child of an
	// older build closes it, and this end reads EOF.
	conns := k.conns
	if conns != nil {
		h.Control = append(h.Control, wire.CtlConns)
		attr.Files = append(attr.Files, uintptr(k.childConns))
	}
	// The program itself, started from this descriptor: the kernel opens
	// /proc/self/fd/N of the forked process, which is the file opened and
	// checked, whatever is at the path now.
	path := l.path
	if fromDescriptor(l.prog) {
		fd, err := ownFD(l.prog)
		if err != nil {
			return fail(err)
		}
		h.Control = append(h.Control, wire.CtlExe)
		attr.Files = append(attr.Files, uintptr(fd))
		path = "/proc/self/fd/" + strconv.Itoa(len(attr.Files)-1)
		h.Meta[wire.MetaName] = wire.EscapeMeta(filepath.Base(l.path))
	}
	// Older generations still alive, so the new one can count them.
	for _, e := range elders {
		fd, err := fds.Dup(e.ctl)
		if err != nil {
			continue // it exited and its channel was closed meanwhile
		}
		toClose = append(toClose, fd)
		h.Control = append(h.Control, wire.CtlElderPrefix+strconv.Itoa(e.pid))
		attr.Files = append(attr.Files, uintptr(fd))
	}
	env, err := h.Env()
	if err != nil {
		return fail(err)
	}
	attr.Env = append(append(slices.Clip(l.env), u.sd.childEnv()...), env...)

	pid, err := startProcess(path, l.args, attr, first, handedConns)
	if err == nil {
		if err = fds.Open(handedConns); err != nil {
			// One was closed while the process started, and its number
			// may have named another file by then. Go is not said yet:
			// the process cannot have taken over.
			u.killStarted(pid)
		}
	}
	if err != nil {
		var closed *fds.ClosedError
		if errors.As(err, &closed) {
			err = fmt.Errorf("hand over %q (was it closed before Exit?): %w", files[closed.Index].name, closed.Err)
		} else {
			err = fmt.Errorf("start %s: %w", l.path, err)
		}
		ce := &ChildError{Stage: StageStart, Err: err}
		if pid > 0 {
			ce.PID = pid // started, then killed
		}
		return nil, ce
	}
	// Without probation go follows ready anyway. Said now, as the process
	// starts, it waits in the channel, and the child takes over as soon as
	// it is ready, without a round trip through this process, busy
	// serving (and not scheduled, on a loaded machine, when it is needed).
	goAhead := l.probation == 0 && wire.Go(ctl) == nil
	stderr := tail.New(4096)
	settled := make(chan struct{})
	go func() {
		defer close(settled)
		defer pr.Close()
		stderr.Drain(u.opts.Stderr, pr)
	}()
	c = watchProcess(pid)
	c.ctl, c.settled, c.stderr, c.probation = ctl, settled, stderr.String, l.probation
	c.lines, c.goAhead = wire.NewLines(ctl), goAhead
	if conns != nil {
		c.pass = newPasser(conns, u.log)
	}
	return c, nil
}

// ownFD returns the descriptor behind f, which the caller keeps open
// until the process it is handed to has started.
func ownFD(f *os.File) (int, error) {
	raw, err := fds.Raw([]syscall.Conn{f})
	if err != nil {
		return -1, err
	}
	return raw[0], nil
}

// watchProcess returns the child started as pid, and reaps it when it
// exits.
func watchProcess(pid int) *child {
	proc, _ := os.FindProcess(pid) // cannot fail on unix; the child is ours until reaped
	exited := make(chan struct{})
	var state *os.ProcessState
	go func() {
		// Fails only if something else reaped the child (SIGCHLD ignored,
		// a reaper in PID 1): the error then reports an unknown end.
		state, _ = proc.Wait()
		close(exited)
	}()
	return &child{
		pid:    pid,
		exited: exited,
		state: func() *os.ProcessState {
			<-exited
			return state
		},
		signal:  proc.Signal,
		status:  func() string { return "" },
		release: func() {},
	}
}

// nextEnv is the environment of the next generation: the one configured,
// less the service manager's variables, which only this process's notifier
// hands on (WATCHDOG_PID names this process), with Options.EnvFile read
// now.
func (u *Upgrader) nextEnv() ([]string, error) {
	env := u.childEnv()
	if u.opts.EnvFile == "" {
		return env, nil
	}
	add, err := readEnvFile(u.opts.EnvFile)
	if err != nil {
		return nil, err
	}
	return mergeEnv(env, add), nil
}

// childEnv is the configured environment less the service manager's
// variables.
func (u *Upgrader) childEnv() []string {
	env := make([]string, 0, len(u.next.env)+2)
	for _, kv := range u.next.env {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case envWatchdogPID, envWatchdogUsec, envNotifySocket:
			continue
		}
		env = append(env, kv)
	}
	return env
}

// childEnv returns the service manager's variables for a handoff child:
// the socket, and the watchdog timeout without a WATCHDOG_PID (the child
// pings once it is the main process).
func (n *notifier) childEnv() []string {
	if n.sd == nil {
		return nil
	}
	env := []string{envNotifySocket + "=" + n.socket}
	if n.watchdog > 0 {
		env = append(env, envWatchdogUsec+"="+strconv.FormatInt(n.watchdog.Microseconds(), 10))
	}
	return env
}

// reserveFDs grows this process's descriptor table, now, to fit the
// control files an upgrade opens beyond the highest of the files handed
// over, once there are enough of them to make the table large. Growing it
// during an upgrade instead stalls for milliseconds in a multi-threaded
// process (the kernel waits for an RCU grace period): measured 1-9 ms at
// 1000 sockets, when a copy of each was made for the child. The table
// never shrinks, so one probe descriptor at the far end, closed at once,
// is enough.
func reserveFDs(files []*handed) {
	if len(files) < manyFiles {
		return // the table a process starts with fits these
	}
	raw, err := fds.Raw(connsOf(files))
	if err != nil {
		return // one was closed: the upgrade will say so
	}
	if fd, err := unix.FcntlInt(uintptr(raw[0]), unix.F_DUPFD_CLOEXEC, reach(slices.Max(raw), len(files))); err == nil {
		unix.Close(fd)
	}
}

// manyFiles is the number of files handed over from which reserveFDs and
// start size descriptor tables ahead: fewer fit the table a process
// starts with.
const manyFiles = 64

// reach is the descriptor number an upgrade handing over n files makes
// room for, in the process handing them over (its highest handed-over
// descriptor is highest) and in the child started with them: past the
// files, stdio and control files, with room to spare.
func reach(highest, n int) int {
	return max(highest, n+16) + 64
}

// connsOf returns the conns of files, in order.
func connsOf(files []*handed) []syscall.Conn {
	conns := make([]syscall.Conn, len(files))
	for i, f := range files {
		conns[i] = f.conn
	}
	return conns
}

// startProcess is start; a seam for tests.
var startProcess = start

// start starts the process with the descriptors behind conns as its
// files from first on: the descriptors themselves, not copies (a thousand
// copies to make and close cost about a millisecond). Once it has started,
// the caller checks with fds.Open that none was closed meanwhile.
//
// With many files, a close-on-exec descriptor is kept open at the reach
// of the child's files while it starts (this process's reserveFDs has
// made room for it, unless the child gets more control files than reach
// spares, many older generations alive, say). The fork copies a table
// that fits it and exec keeps that table, so the child's own reserveFDs
// finds room. Without it a child
// handed 1000 sockets started with 1024 slots and grew them just after
// it went live: its Ready took 10 ms (p50) instead of 0.4, and every
// accept and dup in it waited meanwhile.
func start(path string, args []string, attr *syscall.ProcAttr, first int, conns []syscall.Conn) (int, error) {
	raw, err := fds.Raw(conns)
	if err != nil {
		return 0, err
	}
	for i, fd := range raw {
		attr.Files[first+i] = uintptr(fd)
	}
	if len(raw) >= manyFiles {
		if fd, err := unix.FcntlInt(uintptr(raw[0]), unix.F_DUPFD_CLOEXEC, reach(len(attr.Files), len(raw))); err == nil {
			defer unix.Close(fd)
		}
	}
	pid, _, err := syscall.StartProcess(path, args, attr)
	return pid, err
}

// killStarted kills and reaps a process just started, before it was told
// to go.
func (u *Upgrader) killStarted(pid int) {
	if err := unix.Kill(pid, unix.SIGKILL); err != nil {
		u.log.Warn("could not kill the process just started", slog.Int("pid", pid), slog.Any("error", err))
		return
	}
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(pid, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			u.log.Warn("could not reap the process just started", slog.Int("pid", pid), slog.Any("error", err))
		}
		return
	}
}

// stderrPipe returns a pipe for the child's stderr: the read end for us,
// non-blocking and close-on-exec; the write end for the child, blocking
// (a program it starts inherits it, and a Go child's os.Stderr must not
// be registered with its poller, since Ready replaces fd 2).
func stderrPipe() (r *os.File, w int, err error) {
	var p [2]int
	if err := pipeCloexec(p[:]); err != nil {
		return nil, -1, os.NewSyscallError("pipe", err)
	}
	if err := syscall.SetNonblock(p[0], true); err != nil {
		syscall.Close(p[0])
		syscall.Close(p[1])
		return nil, -1, os.NewSyscallError("setnonblock", err)
	}
	return os.NewFile(uintptr(p[0]), "child-stderr"), p[1], nil
}
