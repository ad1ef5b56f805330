package readiness

import (
	"bytes"
	"errors"
	"fmt"
	"unicode/utf8"
)

// MaxReason is the longest failure reason carried, in bytes.
const MaxReason = 2048

var (
	// ErrNotSupported is returned on platforms without unix sockets.
	ErrNotSupported = errors.New("readiness: not supported on this platform")
	// ErrClosed is returned by Wait when the other end closed the channel
	// without sending a message: the started program exited or crashed.
	ErrClosed = errors.New("readiness: channel closed before the program said ready or failed")
)

// FailedError is a failure the started program reported itself.
type FailedError struct {
	Reason string // as sent by the program, after sanitising
}

// Error quotes the program's reason.
func (e *FailedError) Error() string { return "readiness: program reported failure: " + e.Reason }

// MessageError reports bytes on the channel that are not a valid message.
type MessageError struct {
	Msg string // the offending bytes, shortened
}

// Error quotes the start of the offending bytes.
func (e *MessageError) Error() string {
	return fmt.Sprintf("readiness: malformed message %q: want \"ready\" or \"failed: <reason>\"", e.Msg)
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

// Parse decodes one message line (without its newline): nil for "ready",
// a [*FailedError] for "failed: <reason>", a [*MessageError] otherwise.
func Parse(line []byte) error {
	if bytes.Equal(line, []byte("ready")) {
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
