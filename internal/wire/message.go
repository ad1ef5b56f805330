package wire

import (
	"bytes"
	"errors"
	"fmt"
	"unicode/utf8"
)

// MaxReason is the longest failure reason carried, in bytes.
const MaxReason = 2048

var (
	// ErrClosed is returned by the Wait functions when the other end
	// closed the channel without sending the awaited message: the process
	// there exited or crashed.
	ErrClosed = errors.New("the channel closed before the awaited message")
	// ErrNotSupported is returned where there are no unix sockets.
	ErrNotSupported = errors.New("not supported on this platform")
)

// FailedError is a failure the started program reported itself.
type FailedError struct {
	Reason string // as sent by the program, after sanitising
}

// Error quotes the program's reason.
func (e *FailedError) Error() string { return "reported failure: " + e.Reason }

// MessageError reports bytes on the channel that are not the message
// awaited.
type MessageError struct {
	Msg string // the offending bytes, shortened
}

// Error quotes the start of the offending bytes.
func (e *MessageError) Error() string {
	return fmt.Sprintf("malformed message %q on the readiness channel", e.Msg)
}

// Sanitize makes reason fit on one message line: control characters
// (C0, DEL and, in valid UTF-8, C1) become spaces, surrounding space is
// trimmed, and the result is cut to MaxReason bytes without splitting a
// UTF-8 sequence. Sanitize(Sanitize(s)) == Sanitize(s).
func Sanitize(reason string) string {
	b := make([]byte, 0, len(reason))
	for i := 0; i < len(reason); {
		r, size := utf8.DecodeRuneInString(reason[i:])
		// An invalid byte decodes as RuneError, which is no control
		// character: it is kept as it is.
		if r < 0x20 || r >= 0x7f && r <= 0x9f {
			b = append(b, ' ')
		} else {
			b = append(b, reason[i:i+size]...)
		}
		i += size
	}
	// Trim before cutting, so that leading space (such as the one after
	// "failed:") does not use up the limit.
	b = bytes.TrimSpace(b)
	if len(b) > MaxReason {
		n := MaxReason
		for n > 0 && b[n]&0xC0 == 0x80 { // do not split a UTF-8 sequence
			n--
		}
		b = bytes.TrimSpace(b[:n])
	}
	return string(b)
}

// Parse decodes the child's first message line (without its newline): nil
// for "ready", a [*FailedError] for "failed: <reason>", a [*MessageError]
// otherwise.
func Parse(line []byte) error {
	if bytes.Equal(line, []byte(msgReady)) {
		return nil
	}
	if r, ok := bytes.CutPrefix(line, []byte("failed:")); ok {
		return &FailedError{Reason: Sanitize(string(r))}
	}
	return malformed(line)
}

// malformed returns a *MessageError quoting the start of line.
func malformed(line []byte) error {
	if len(line) > 64 {
		line = line[:64]
	}
	return &MessageError{Msg: string(line)}
}
