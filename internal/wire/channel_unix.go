//go:build unix

package wire

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// maxMessage bounds one message on the wire: "failed: " + reason + "\n".
const maxMessage = len("failed: ") + MaxReason + 1

// Pair returns a connected channel: parent stays with the caller, child is
// handed to the program it starts. Both are close-on-exec and non-blocking;
// the caller closes its copy of child once the program has started, or the
// parent end never sees the channel close.
func Pair() (parent, child *os.File, err error) {
	parent, fd, err := PairFD()
	if err != nil {
		return nil, nil, err
	}
	return parent, os.NewFile(uintptr(fd), "readiness-child"), nil
}

// PairFD is [Pair] with the child's end a bare descriptor, for a caller
// that only hands it to the program it starts: wrapped in an *os.File it
// would be registered with this process's poller, and deregistered again
// at its close, for nothing. The caller closes it with syscall.Close.
func PairFD() (parent *os.File, child int, err error) {
	fds, err := socketpair()
	if err != nil {
		return nil, -1, err
	}
	return os.NewFile(uintptr(fds[0]), "readiness-parent"), fds[1], nil
}

// Ready tells the parent that this generation is ready.
func Ready(f *os.File) error { return send(f, msgReady) }

// Fail tells the parent that this generation cannot start, and why. The
// reason reaches the parent's [Wait] as [Sanitize] leaves it.
func Fail(f *os.File, reason string) error {
	r := Sanitize(reason)
	if r == "" {
		r = "no reason given"
	}
	return send(f, "failed: "+r)
}

// Go tells the child that it may serve once it is ready: after its ready
// and any probation, or, without a probation, with the start, before the
// child has said anything (it reads go when it is ready).
func Go(f *os.File) error { return send(f, msgGo) }

// Live tells the parent, after its go, that this generation has taken
// over (it wrote its pidfile) and serves from now on.
func Live(f *os.File) error { return send(f, msgLive) }

// ReadyLive is [Ready] and [Live] in one write, for a child that had go
// before it was ready (the parent sent it with the start) and took over at
// once; only a parent of [VersionStream] or later reads both.
func ReadyLive(f *os.File) error { return send(f, msgReady+"\n"+msgLive) }

// Main tells the child, after it said live, that the parent has told the
// service manager (systemd's MAINPID=) that the child is the service's
// main process now.
func Main(f *os.File) error { return send(f, msgMain) }

func send(f *os.File, msg string) error {
	if _, err := f.Write([]byte(msg + "\n")); err != nil {
		return fmt.Errorf("write to the readiness channel: %w", err)
	}
	return nil
}

// Wait blocks, in the parent, until the child says ready (nil) or failed
// ([*FailedError]), closes the channel without a message ([ErrClosed]),
// sends garbage ([*MessageError]), or ctx ends (ctx.Err()). f must come
// from [Pair]; Wait uses its read deadline.
func Wait(ctx context.Context, f *os.File) error { return NewLines(f).Wait(ctx) }

// TakeGo consumes, in the child, a go the parent has already sent, and
// reports whether there was one; it reads nothing otherwise (nor
// anything after it), and never blocks. Call it before anything else
// reads f.
func TakeGo(f *os.File) bool {
	rc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	const msg = msgGo + "\n"
	took := false
	rc.Control(func(fd uintptr) {
		var b [len(msg)]byte
		n, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		if err != nil || n != len(msg) || string(b[:]) != msg {
			return
		}
		n, err = unix.Read(int(fd), b[:])
		took = err == nil && n == len(msg)
	})
	return took
}

// WaitGo blocks, in the child, until the parent says go
// (nil), goes away ([ErrClosed]: it exited, so this generation is on its
// own), sends anything else ([*MessageError]), or ctx ends.
func WaitGo(ctx context.Context, f *os.File) error { return expect(ctx, f, msgGo) }

// WaitMain blocks, in the child after [Live], until the parent says main
// (nil), goes away ([ErrClosed]), sends anything else ([*MessageError]),
// or ctx ends.
func WaitMain(ctx context.Context, f *os.File) error { return expect(ctx, f, msgMain) }

func expect(ctx context.Context, f *os.File, msg string) error {
	line, err := readLine(ctx, f, len(msg)+1)
	if err != nil {
		return err
	}
	if string(line) != msg {
		return malformed(line)
	}
	return nil
}

// WaitLive blocks, in the parent after [Go], until the child says live
// (nil) or failed ([*FailedError]), closes the channel ([ErrClosed]),
// sends garbage ([*MessageError]), or ctx ends.
func WaitLive(ctx context.Context, f *os.File) error { return NewLines(f).WaitLive(ctx) }

// readLine reads one message line of at most max bytes (newline
// included). Each side sends one message at a time and waits for the
// answer, so nothing past the newline is lost.
func readLine(ctx context.Context, f *os.File, max int) ([]byte, error) {
	stop := interruptOnDone(ctx, f)
	defer stop()
	buf := make([]byte, 0, 64)
	chunk := make([]byte, 512)
	for {
		n, err := f.Read(chunk)
		buf = append(buf, chunk[:n]...)
		// A line longer than any valid message is malformed, whatever
		// it starts with; a valid one ends within max bytes.
		if i := bytes.IndexByte(buf, '\n'); i >= 0 && i < max {
			return buf[:i], nil
		}
		if len(buf) >= max {
			return nil, malformed(buf)
		}
		if err != nil {
			return nil, readErr(ctx, err)
		}
	}
}

// WaitClosed blocks until the other end of f is closed — the process there
// exited — or ctx ends (ctx.Err()). Bytes arriving on the channel are
// ignored.
func WaitClosed(ctx context.Context, f *os.File) error {
	stop := interruptOnDone(ctx, f)
	defer stop()
	buf := make([]byte, 64)
	for {
		if _, err := f.Read(buf); err != nil {
			if err := readErr(ctx, err); err != ErrClosed {
				return err
			}
			return nil
		}
	}
}

// interruptOnDone makes a blocked read on f return when ctx ends. stop
// waits for a callback already running, so that it cannot set a deadline
// in the past on f after the read has returned.
func interruptOnDone(ctx context.Context, f *os.File) (stop func()) {
	f.SetReadDeadline(time.Time{})
	done := make(chan struct{})
	cancel := context.AfterFunc(ctx, func() {
		defer close(done)
		f.SetReadDeadline(time.Unix(1, 0))
	})
	return func() {
		if !cancel() {
			<-done
		}
	}
}

func readErr(ctx context.Context, err error) error {
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET):
		return ErrClosed
	}
	return fmt.Errorf("read the readiness channel: %w", err)
}

// Upgraded tells a parked parent that this generation handed over to one
// of its own: the parent's window ends.
func Upgraded(f *os.File) error { return send(f, msgUpgraded) }

// AskRollback asks a parked parent to take back over, for reason.
func AskRollback(f *os.File, reason string) error {
	r := Sanitize(reason)
	if r == "" {
		r = "no reason given"
	}
	return send(f, msgRollback+r)
}

// Retire tells the child that the parent's build serves again.
func Retire(f *os.File) error { return send(f, msgRetire) }

// Retiring tells the parent that this generation drains, retired.
func Retiring(f *os.File) error { return send(f, msgRetiring) }

// Lines reads the messages on a channel one line at a time, keeping what
// a read brought past the line for the next, until the other end closes
// ([ErrClosed]) or ctx ends. A parent reads its child's whole life with
// one: ready, live, and the messages after the hand-over.
type Lines struct {
	f   *os.File
	buf []byte
}

// NewLines reads f, which must come from [Pair].
func NewLines(f *os.File) *Lines { return &Lines{f: f} }

// Next returns the next message after the hand-over.
func (l *Lines) Next(ctx context.Context) (After, error) {
	line, err := l.line(ctx)
	if err != nil {
		return After{}, err
	}
	return ParseAfter(line)
}

// Wait is [Wait] on the lines of f: what a child sends first.
func (l *Lines) Wait(ctx context.Context) error {
	line, err := l.line(ctx)
	if err != nil {
		return err
	}
	return Parse(line)
}

// WaitLive is [WaitLive] on the lines of f. A child that was sent go
// ahead sends live right after ready, in the same read as like as not:
// nothing is lost between the two.
func (l *Lines) WaitLive(ctx context.Context) error {
	line, err := l.line(ctx)
	if err != nil {
		return err
	}
	if string(line) == msgLive {
		return nil
	}
	if err := Parse(line); err != nil {
		return err
	}
	return malformed(line) // "ready" again
}

// Buffered reports whether the reads so far brought the next line whole
// (or more than any message can be): the next call returns without
// reading, or waiting.
func (l *Lines) Buffered() bool {
	return bytes.IndexByte(l.buf, '\n') >= 0 || len(l.buf) >= maxMessage
}

// line reads the next line, keeping what follows it for the next call.
func (l *Lines) line(ctx context.Context) ([]byte, error) {
	stop := interruptOnDone(ctx, l.f)
	defer stop()
	chunk := make([]byte, 512)
	for {
		if i := bytes.IndexByte(l.buf, '\n'); i >= 0 {
			line := l.buf[:i:i]
			l.buf = l.buf[i+1:]
			if i >= maxMessage {
				return nil, malformed(line)
			}
			return line, nil
		}
		if len(l.buf) >= maxMessage {
			return nil, malformed(l.buf)
		}
		n, err := l.f.Read(chunk)
		l.buf = append(l.buf, chunk[:n]...)
		if n == 0 && err != nil {
			return nil, readErr(ctx, err)
		}
	}
}
