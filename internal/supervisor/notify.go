package supervisor

import (
	"bytes"
	"strings"
)

// maxNotify bounds a notify datagram; longer ones are ignored whole
// (systemd's limit is larger, but nothing we read needs more).
const maxNotify = 4096

// maxStatus bounds a STATUS= text kept for logging.
const maxStatus = 256

// notice is what one sd_notify datagram says that the supervisor cares
// about.
type notice struct {
	Ready  bool   // a line "READY=1"
	Status string // the last STATUS= value, printable, at most maxStatus bytes
}

// parseNotify parses one sd_notify datagram: newline-separated KEY=VALUE
// assignments (sd_notify(3)). Empty lines, lines without '=' and keys it
// does not know are ignored, as systemd does; a datagram holding a NUL
// byte is ignored whole. It never fails: the datagram is outside input and
// the worst it can do is not be understood.
func parseNotify(b []byte) notice {
	var n notice
	if len(b) > maxNotify || bytes.IndexByte(b, 0) >= 0 {
		return n
	}
	for line := range bytes.SplitSeq(b, []byte{'\n'}) {
		k, v, ok := bytes.Cut(line, []byte{'='})
		if !ok {
			continue
		}
		switch string(k) {
		case "READY":
			if string(v) == "1" {
				n.Ready = true
			}
		case "STATUS":
			n.Status = printable(v, maxStatus)
		}
	}
	return n
}

// printable returns b with control and non-ASCII bytes replaced by '?',
// cut to max bytes, fit for a log line.
func printable(b []byte, max int) string {
	if len(b) > max {
		b = b[:max]
	}
	var s strings.Builder
	s.Grow(len(b))
	for _, c := range b {
		if c < 0x20 || c >= 0x7f {
			c = '?'
		}
		s.WriteByte(c)
	}
	return s.String()
}
