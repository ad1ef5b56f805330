//go:build unix

package readiness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"
)

// msgGo is the starter's answer to "ready"; msgLive the program's answer
// to "go".
const (
	msgGo   = "go"
	msgLive = "live"
	msgMain = "main"
)

// maxMessage bounds one message on the wire: "failed: " + reason + "\n".
const maxMessage = len("failed: ") + MaxReason + 1

func encodeReady() []byte { return []byte("ready\n") }

func encodeFailed(reason string) []byte {
	r := Sanitize(reason)
	if r == "" {
		r = "no reason given"
	}
	return []byte("failed: " + r + "\n")
}

// Pair returns a connected channel: parent stays with the caller, child is
// handed to the program it starts (for example in
// [os/exec.Cmd.ExtraFiles]). Both are close-on-exec and non-blocking; the
// caller closes its copy of child once the program has started, or the
// parent end never sees the channel close.
func Pair() (parent, child *os.File, err error) {
	fds, err := socketpair()
	if err != nil {
		return nil, nil, err
	}
	return os.NewFile(uintptr(fds[0]), "readiness-parent"), os.NewFile(uintptr(fds[1]), "readiness-child"), nil
}

// Ready tells the starter that this program is ready.
func Ready(f *os.File) error {
	return send(f, encodeReady())
}

// Fail tells the starter that this program cannot start, and why. The
// reason reaches the starter's [Wait] verbatim (see [Sanitize]).
func Fail(f *os.File, reason string) error {
	return send(f, encodeFailed(reason))
}

func send(f *os.File, msg []byte) error {
	if _, err := f.Write(msg); err != nil {
		return fmt.Errorf("readiness: tell the starting process: %w", err)
	}
	return nil
}

// Wait blocks until the program at the other end of f says ready (nil) or
// failed ([*FailedError]), closes the channel without a message
// ([ErrClosed]), sends garbage ([*MessageError]), or ctx ends (ctx.Err()).
// f must come from [Pair]; Wait uses its read deadline.
func Wait(ctx context.Context, f *os.File) error {
	line, err := readLine(ctx, f, maxMessage)
	if err != nil {
		return err
	}
	return Parse(line)
}

// Go tells the started program, after it said ready, that it may serve:
// the starter hands over now (after any probation it imposes).
func Go(f *os.File) error {
	return send(f, []byte(msgGo+"\n"))
}

// WaitGo blocks, in the started program after [Ready], until the starter
// says go (nil), goes away ([ErrClosed]: it exited, so this program is on
// its own), sends anything else ([*MessageError]), or ctx ends.
func WaitGo(ctx context.Context, f *os.File) error {
	line, err := readLine(ctx, f, len(msgGo)+1)
	if err != nil {
		return err
	}
	if string(line) != msgGo {
		return malformed(line)
	}
	return nil
}

// Live tells the starter, after its go, that this program has taken over
// (it wrote its pidfile, say) and serves from now on.
func Live(f *os.File) error {
	return send(f, []byte(msgLive+"\n"))
}

// WaitLive blocks, in the starter after [Go], until the program says live
// (nil) or failed ([*FailedError]), closes the channel ([ErrClosed]),
// sends garbage ([*MessageError]), or ctx ends.
func WaitLive(ctx context.Context, f *os.File) error {
	line, err := readLine(ctx, f, maxMessage)
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

// Main tells the program, after it said live, that the starter has
// handed its place over: it told the service manager (systemd's
// MAINPID=) that the program is the service's main process now.
func Main(f *os.File) error {
	return send(f, []byte(msgMain+"\n"))
}

// WaitMain blocks, in the program after [Live], until the starter says
// main (nil), goes away ([ErrClosed]), sends anything else
// ([*MessageError]), or ctx ends.
func WaitMain(ctx context.Context, f *os.File) error {
	line, err := readLine(ctx, f, len(msgMain)+1)
	if err != nil {
		return err
	}
	if string(line) != msgMain {
		return malformed(line)
	}
	return nil
}

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

// WaitClosed blocks until the other end of f is closed — the process that
// started this one exited — or ctx ends (ctx.Err()). Bytes arriving on the
// channel are ignored.
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
// in the past on f after Wait or WaitClosed has returned.
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
	return fmt.Errorf("readiness: read: %w", err)
}

// ReadyTableflip tells a parent built with github.com/cloudflare/tableflip
// (v1.2.x) that this program is ready, the way tableflip's own Ready does:
// one byte, 42, on the pipe tableflip passed as fd 3, which it then
// closes. The parent hands over and exits when it reads it.
func ReadyTableflip(f *os.File) error {
	defer f.Close()
	if _, err := f.Write([]byte{42}); err != nil {
		return fmt.Errorf("readiness: tell the tableflip parent: %w", err)
	}
	return nil
}
