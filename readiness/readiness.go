package readiness

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// MaxReason is the longest failure reason carried, in bytes.
const MaxReason = 2048

// maxMessage bounds one message on the wire: "failed: " + reason + "\n".
const maxMessage = len("failed: ") + MaxReason + 1

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

func (e *FailedError) Error() string { return "readiness: program reported failure: " + e.Reason }

// MessageError reports bytes on the channel that are not a valid message.
type MessageError struct {
	Msg string // the offending bytes, shortened
}

func (e *MessageError) Error() string {
	return fmt.Sprintf("readiness: malformed message %q: want \"ready\" or \"failed: <reason>\"", e.Msg)
}

// Sanitize makes reason fit on one message line: control characters become
// spaces and the result is cut to MaxReason bytes without splitting a
// UTF-8 sequence.
func Sanitize(reason string) string {
	b := []byte(reason)
	for i, c := range b {
		if c < 0x20 || c == 0x7f {
			b[i] = ' '
		}
	}
	if len(b) > MaxReason {
		n := MaxReason
		for n > 0 && b[n]&0xC0 == 0x80 { // do not split a UTF-8 sequence
			n--
		}
		b = b[:n]
	}
	return strings.TrimSpace(string(b))
}

func encodeReady() []byte { return []byte("ready\n") }

func encodeFailed(reason string) []byte {
	r := Sanitize(reason)
	if r == "" {
		r = "no reason given"
	}
	return []byte("failed: " + r + "\n")
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
	m := line
	if len(m) > 64 {
		m = m[:64]
	}
	return &MessageError{Msg: string(m)}
}
