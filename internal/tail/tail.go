// Package tail keeps the last bytes of a stream: a failing child's stderr,
// quoted in the error that reports it.
package tail

import (
	"io"
	"strings"
	"sync"
)

// Buffer keeps the last Max bytes written to it. Safe for concurrent use.
type Buffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

// New returns a Buffer that keeps the last max bytes.
func New(max int) *Buffer { return &Buffer{max: max} }

// Write keeps the end of p; it never fails.
func (t *Buffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(p)
	if len(p) >= t.max {
		t.buf = append(t.buf[:0], p[len(p)-t.max:]...)
		return n, nil
	}
	if over := len(t.buf) + len(p) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	t.buf = append(t.buf, p...)
	return n, nil
}

// String returns what is kept.
func (t *Buffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// Excerpt returns s without surrounding space, cut to its last 512 bytes
// (marked "..."), fit to quote in one error message.
func Excerpt(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 512 {
		s = "..." + s[len(s)-512:]
	}
	return s
}

// Drain copies r to w, keeping its last bytes in t, until r ends, whatever
// happens to w: a stderr pipe that nobody reads would kill the process
// writing to it with SIGPIPE. After w fails once, it gets nothing more.
func (t *Buffer) Drain(w io.Writer, r io.Reader) {
	io.Copy(io.MultiWriter(&bestEffort{w: w}, t), r)
}

// bestEffort forwards writes to w until w fails once, and never fails.
type bestEffort struct {
	w      io.Writer
	failed bool
}

func (b *bestEffort) Write(p []byte) (int, error) {
	if !b.failed && b.w != nil {
		if _, err := b.w.Write(p); err != nil {
			b.failed = true
		}
	}
	return len(p), nil
}
