//go:build unix

package starter

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/handoff-go/handoff/fdpass"
	"github.com/handoff-go/handoff/internal/fds"
	"github.com/handoff-go/handoff/internal/tail"
	"github.com/handoff-go/handoff/internal/wire"
	"github.com/handoff-go/handoff/readiness"
)

// tailSize is how much of the program's stderr is kept.
const tailSize = 4096

// endKey marks the datagram the starter sends its own notify socket once
// the program has been reaped. Datagrams queue in the order they were
// sent, and whatever the program sent is queued before it dies: everything
// read before the marker is all it said, and nothing has to be waited for.
const endKey = "X_HANDOFF_STARTER_END"

// settleLimit bounds the wait for the end marker, should it not come (a
// process flooding the socket); stdioGrace bounds the wait, after that,
// for the program's output pipes to reach their end, which they do at once
// unless a process the program started still holds them.
const (
	settleLimit = time.Second
	stdioGrace  = 200 * time.Millisecond
)

// Process is a started program. Its methods are safe for concurrent use.
type Process struct {
	cmd    *exec.Cmd
	pid    int
	log    *slog.Logger
	dir    string // of the notify socket
	sock   string // the notify socket
	rcv    *readiness.Receiver
	end    string       // the end marker's value, unguessable by the program
	stderr *tail.Buffer // nil without TailStderr

	ready     chan struct{}
	exited    chan struct{} // closed once reaped
	settled   chan struct{} // closed once what it said before it exited was read
	readyOnce sync.Once
	closeOnce sync.Once
	termOnce  sync.Once

	mu     sync.Mutex
	status string // its last STATUS=
}

// Start starts the program described by cfg through [fdpass.Start] (or
// cfg.Shim), with a
// private NOTIFY_SOCKET in a new directory only this user can reach, and
// watches it until it exits.
func Start(cfg Config) (p *Process, err error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// Closed in any case once the program has its copies, or on failure.
	var childEnds []*os.File
	defer func() {
		for _, f := range childEnds {
			f.Close()
		}
	}()
	// Ours, closed only on failure.
	var ours []io.Closer
	defer func() {
		if err != nil {
			for _, c := range ours {
				c.Close()
			}
		}
	}()

	dir, err := os.MkdirTemp("", "handoff-notify-") // mode 0700: only this user reaches the socket
	if err != nil {
		return nil, fmt.Errorf("directory for the notify socket: %w", err)
	}
	ours = append(ours, removeAll(dir))
	sock := filepath.Join(dir, "notify")
	rcv, err := readiness.Listen(sock)
	if err != nil {
		return nil, err
	}
	ours = append(ours, rcv)

	cmd := exec.Command(cfg.Path, cfg.Args...)
	cmd.Dir, cmd.SysProcAttr = cfg.Dir, cfg.Sys
	env := cfg.Env
	if env == nil {
		env = os.Environ()
	}
	cmd.Env = append(dropVars(wire.StripEnv(env), "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"), "NOTIFY_SOCKET="+sock)
	p = &Process{
		cmd:     cmd,
		log:     log,
		dir:     dir,
		sock:    sock,
		rcv:     rcv,
		end:     rand.Text(),
		ready:   make(chan struct{}),
		exited:  make(chan struct{}),
		settled: make(chan struct{}),
	}

	// os/exec copies a non-*os.File stdio with goroutines that cmd.Wait
	// waits for: a process the program started that keeps the pipe would
	// hold Wait, and with it Exited, for as long. So the program only ever
	// gets files, and the starter copies on its own.
	var feed func()    // copies cfg.Stdin into the program's stdin pipe
	var pumps []func() // copy the program's output pipes
	pipe := func() (r, w *os.File, err error) {
		if r, w, err = os.Pipe(); err != nil {
			return nil, nil, fmt.Errorf("pipe for the program's stdio: %w", err)
		}
		return r, w, nil
	}
	switch in := cfg.Stdin.(type) {
	case nil:
	case *os.File:
		cmd.Stdin = in
	default:
		r, w, err := pipe()
		if err != nil {
			return nil, err
		}
		childEnds, ours = append(childEnds, r), append(ours, w)
		cmd.Stdin = r
		feed = func() {
			io.Copy(w, in) // ends at EOF, or when the program and its heirs closed the pipe
			w.Close()
		}
	}
	stdout, stderr := cfg.Stdout, cfg.Stderr
	_, outIsFile := stdout.(*os.File)
	errFile, errIsFile := stderr.(*os.File)
	shared := stdout != nil && !outIsFile && sameWriter(stdout, stderr)
	if shared && cfg.TailStderr {
		// Copied by two goroutines: one Write at a time, as os/exec
		// promises for a shared writer.
		lw := &lockedWriter{w: stdout}
		stdout, stderr = lw, lw
	}
	switch out := stdout.(type) {
	case nil:
	case *os.File:
		cmd.Stdout = out
	default:
		r, w, err := pipe()
		if err != nil {
			return nil, err
		}
		childEnds, ours = append(childEnds, w), append(ours, r)
		cmd.Stdout = w
		pumps = append(pumps, func() { pump(out, r) })
	}
	switch {
	case shared && !cfg.TailStderr:
		// One pipe for both, as os/exec does: the writer sees the
		// program's writes in their order.
		cmd.Stderr = cmd.Stdout
	case cfg.TailStderr:
		r, w, err := pipe()
		if err != nil {
			return nil, err
		}
		childEnds, ours = append(childEnds, w), append(ours, r)
		cmd.Stderr = w
		p.stderr = tail.New(tailSize)
		pumps = append(pumps, func() {
			defer r.Close()
			p.stderr.Drain(stderr, r)
		})
	case errIsFile:
		cmd.Stderr = errFile
	case stderr != nil:
		r, w, err := pipe()
		if err != nil {
			return nil, err
		}
		childEnds, ours = append(childEnds, w), append(ours, r)
		cmd.Stderr = w
		pumps = append(pumps, func() { pump(stderr, r) })
	}

	if cfg.Shim != nil {
		err = startShimmed(cmd, cfg.Shim, cfg.Files)
	} else {
		err = fdpass.Start(cmd, cfg.Files...)
	}
	if err != nil {
		return nil, err
	}
	p.pid = cmd.Process.Pid

	if feed != nil {
		go feed()
	}
	var outputs sync.WaitGroup
	for _, f := range pumps {
		outputs.Add(1)
		go func() {
			defer outputs.Done()
			f()
		}()
	}
	outputDone := make(chan struct{})
	go func() {
		outputs.Wait()
		close(outputDone)
	}()
	notified := make(chan struct{})
	go func() {
		defer close(notified)
		p.readNotify()
	}()
	go func() {
		cmd.Wait() // its error is in ProcessState; cmd copies nothing
		close(p.exited)
		p.sendEnd()
		t := time.NewTimer(settleLimit)
		select {
		case <-notified:
		case <-t.C:
			p.log.Warn("the end of the program's notifications did not arrive; closing its notify socket",
				slog.Int("pid", p.pid), slog.Duration("after", settleLimit))
		}
		t.Stop()
		p.closeNotify()
		t = time.NewTimer(stdioGrace)
		select {
		case <-outputDone:
		case <-t.C: // a process it started holds its stdout or stderr
		}
		t.Stop()
		close(p.settled)
	}()
	if d := cfg.ReadyDelay; d > 0 {
		go func() {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-t.C:
				p.setReady()
			case <-p.exited:
			}
		}()
	}
	return p, nil
}

// PID returns the program's process ID.
func (p *Process) PID() int { return p.pid }

// Ready is closed when the program is ready: it sent READY=1 from its own
// PID (where the kernel tells the sender; elsewhere from anyone who can
// reach the socket), or it has been running for Config.ReadyDelay. A
// READY=1 it sent just before it exited still counts, so check Exited too.
func (p *Process) Ready() <-chan struct{} { return p.ready }

// Exited is closed once the program has exited and been reaped.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// State returns how the program ended; nil before Exited is closed.
func (p *Process) State() *os.ProcessState {
	select {
	case <-p.exited:
		return p.cmd.ProcessState
	default:
		return nil
	}
}

// Settled is closed once the program has exited, everything it sent to
// its notify socket has been read (so Status and Ready say all it said),
// the socket and its directory are removed, and its output pipes have
// reached their end — or 200ms after that if a process it started still
// holds them; their copies go on then, and StderrTail may still grow.
func (p *Process) Settled() <-chan struct{} { return p.settled }

// Status returns the last STATUS= the program sent, with control and
// non-ASCII bytes replaced by '?' and cut to 400 bytes.
func (p *Process) Status() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.status
}

// StderrTail returns the last 4 KiB the program wrote to stderr; empty
// without TailStderr. Read it after Settled for all of it.
func (p *Process) StderrTail() string {
	if p.stderr == nil {
		return ""
	}
	return p.stderr.String()
}

// Signal sends sig to the program, unless it has been reaped (os.Process
// then refuses: its PID may name another process by now).
func (p *Process) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Stop sends the program SIGTERM, once, and SIGKILL after grace if it has
// not exited by then. It does not wait: see Exited. Stopping a program that
// has exited does nothing.
func (p *Process) Stop(grace time.Duration) {
	p.termOnce.Do(func() {
		select {
		case <-p.exited:
			return
		default:
		}
		// Signals go through os.Process, which never signals a reaped
		// PID (the number may belong to another process by then).
		p.cmd.Process.Signal(syscall.SIGTERM)
		go func() {
			t := time.NewTimer(grace)
			defer t.Stop()
			select {
			case <-p.exited:
			case <-t.C:
				p.log.Warn("the program did not exit in time after SIGTERM; killing it",
					slog.Int("pid", p.pid), slog.Duration("after", grace))
				p.cmd.Process.Kill()
			}
		}()
	})
}

// CloseNotify stops reading the program's notifications and removes its
// notify socket and its directory; later notifications find no socket. It
// is done once the program exits, and by a caller that no longer listens
// (a new generation that has taken over reports to nobody). Safe to call
// more than once.
func (p *Process) CloseNotify() { p.closeNotify() }

func (p *Process) closeNotify() {
	p.closeOnce.Do(func() {
		p.rcv.Close()
		os.RemoveAll(p.dir)
	})
}

func (p *Process) setReady() { p.readyOnce.Do(func() { close(p.ready) }) }

// sendEnd sends the end marker to the notify socket. If it cannot (the
// socket was closed already), the reader ends without it.
func (p *Process) sendEnd() {
	n, err := readiness.NewNotifier(p.sock)
	if err == nil {
		err = n.Notify(endKey + "=" + p.end)
	}
	if err != nil {
		p.log.Debug("could not mark the end of the program's notifications", slog.Int("pid", p.pid), slog.Any("error", err))
	}
}

// readNotify reads the program's datagrams until the end marker or until
// the socket is closed.
func (p *Process) readNotify() {
	log := p.log.With(slog.Int("pid", p.pid))
	self := os.Getpid()
	for {
		n, err := p.rcv.Receive(context.Background())
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				log.Warn("reading the notify socket", slog.Any("error", err))
			}
			return
		}
		if v, ok := n.Value(endKey); ok && v == p.end && (n.PID == 0 || n.PID == self) {
			return
		}
		if n.PID != 0 && n.PID != p.pid {
			log.Warn("ignored a notify message from another process: the program must send READY=1 itself (exec it, do not fork it)",
				slog.Int("sender", n.PID))
			continue
		}
		if st, ok := n.Value("STATUS"); ok {
			st = printable(st)
			p.mu.Lock()
			p.status = st
			p.mu.Unlock()
			log.Info("status", slog.String("status", st))
		}
		if v, _ := n.Value("READY"); v == "1" {
			p.setReady()
		}
	}
}

// pump copies r to w until r ends. After w fails once it gets nothing
// more, but r is read on: a pipe nobody reads would block the program.
func pump(w io.Writer, r *os.File) {
	defer r.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 && w != nil {
			if _, werr := w.Write(buf[:n]); werr != nil {
				w = nil
			}
		}
		if err != nil {
			return
		}
	}
}

// lockedWriter serializes the writes to a writer shared by stdout and
// stderr.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// sameWriter reports whether a and b are the same writer; writers whose
// type cannot be compared are not.
func sameWriter(a, b io.Writer) (same bool) {
	defer func() {
		if recover() != nil {
			same = false
		}
	}()
	return a == b
}

// removeAll is a Closer that removes a directory tree.
type removeAll string

func (d removeAll) Close() error { return os.RemoveAll(string(d)) }

// printable returns s with control and non-ASCII bytes replaced by '?',
// cut to 400 bytes: what a program said, fit for a log line or an error.
func printable(s string) string {
	if len(s) > 400 {
		s = s[:400]
	}
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c >= 0x7f {
			b[i] = '?'
		}
	}
	return string(b)
}

func dropVars(env []string, names ...string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		drop := false
		for _, n := range names {
			drop = drop || k == n
		}
		if !drop {
			out = append(out, kv)
		}
	}
	return out
}

// startShimmed starts cmd through shim with files at descriptors 3.., as
// fdpass.Start does but without a shell: the shim is a program that sets
// LISTEN_PID to its own PID and execs the rest of its arguments (see
// ExecShim). cmd is left as it was, but started.
func startShimmed(cmd *exec.Cmd, shim []string, files []fdpass.Named) error {
	if cmd.Err != nil {
		return cmd.Err
	}
	names := make([]string, len(files))
	dups := make([]*os.File, 0, len(files))
	defer func() {
		for _, f := range dups {
			f.Close()
		}
	}()
	for i, f := range files {
		if err := wire.CheckName(f.Name); err != nil {
			return fmt.Errorf("file %q: %w", f.Name, err)
		}
		fd, err := fds.Dup(f.Conn)
		if err != nil {
			return fmt.Errorf("duplicate %q: %w", f.Name, err)
		}
		// An *os.File made from a non-blocking descriptor leaves it so
		// when os/exec asks for its Fd.
		dups = append(dups, os.NewFile(uintptr(fd), f.Name))
		names[i] = f.Name
	}
	orig := *cmd
	cmd.Path = shim[0]
	cmd.Args = append(append(slices.Clip(shim), orig.Path), orig.Args[min(1, len(orig.Args)):]...)
	cmd.Env = append(wire.StripEnv(orig.Env),
		wire.EnvListenFDs+"="+strconv.Itoa(len(files)),
		wire.EnvListenFDNames+"="+strings.Join(names, ":"))
	cmd.ExtraFiles = append(slices.Clip(dups), orig.ExtraFiles...)
	err := cmd.Start()
	cmd.Path, cmd.Args, cmd.Env, cmd.ExtraFiles = orig.Path, orig.Args, orig.Env, orig.ExtraFiles
	if err != nil {
		return fmt.Errorf("start %s through %s: %w", orig.Path, shim[0], err)
	}
	return nil
}

// ExecShim is the body of a shim named by Config.Shim: it sets LISTEN_PID
// to this process's PID and replaces this process with args[0] (looked
// up in PATH) and its arguments, so that the program finds LISTEN_PID
// equal to its own PID. It returns only on failure.
func ExecShim(args []string) error {
	if len(args) == 0 {
		return errors.New("exec shim: no program given")
	}
	path, err := exec.LookPath(args[0])
	if err != nil {
		return fmt.Errorf("cannot run %s: %w", args[0], err)
	}
	env := append(dropVars(os.Environ(), wire.EnvListenPID), wire.EnvListenPID+"="+strconv.Itoa(os.Getpid()))
	err = syscall.Exec(path, args, env)
	return fmt.Errorf("cannot run %s: exec: %w", path, err)
}
