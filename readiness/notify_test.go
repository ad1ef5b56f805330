package readiness

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseDatagram(t *testing.T) {
	for _, c := range []struct {
		in    string
		lines []string
		ok    bool
	}{
		{"READY=1", []string{"READY=1"}, true},
		{"READY=1\n", []string{"READY=1"}, true},
		{"STATUS=starting\nREADY=1\nMAINPID=12", []string{"STATUS=starting", "READY=1", "MAINPID=12"}, true},
		{"READY", nil, true},
		{"=1\n\n\nREADY=1\n\n", []string{"READY=1"}, true},
		{"STATUS=a=b", []string{"STATUS=a=b"}, true},
		{"READY=1\x00", nil, false},
		{"", nil, true},
		{"READY=1\n" + strings.Repeat("x", maxDatagram), nil, false},
	} {
		lines, ok := parseDatagram([]byte(c.in))
		assert.Equal(t, c.ok, ok, "%q", c.in)
		assert.Equal(t, c.lines, lines, "%q", c.in)
	}
}

func TestNotificationValue(t *testing.T) {
	n := Notification{Lines: []string{"STATUS=one", "READY=1", "STATUS=two", "READYX=2"}}
	v, ok := n.Value("STATUS")
	assert.True(t, ok)
	assert.Equal(t, "two", v)
	v, _ = n.Value("READY")
	assert.Equal(t, "1", v)
	_, ok = n.Value("MAINPID")
	assert.False(t, ok)
}

func TestStatusLine(t *testing.T) {
	assert.Equal(t, "STATUS=upgrade failed: a?b", statusLine("upgrade failed: a\nb"), "one line")
	assert.Equal(t, "STATUS=a?[31mred ??", statusLine("a\x1b[31mred é"), "printable ASCII")
	assert.Len(t, statusLine(strings.Repeat("x", 2*maxStatus)), len("STATUS=")+maxStatus)
	assert.Empty(t, statusLine(""))
}

func TestWatchdogTimeout(t *testing.T) {
	for _, c := range []struct {
		usec, pid string
		want      time.Duration
		bad       bool
	}{
		{"", "", 0, false},
		{"", "42", 0, false},
		{"30000000", "", 30 * time.Second, false},
		{"30000000", "42", 30 * time.Second, false},
		{"30000000", "43", 0, false}, // another process's watchdog
		{"30000000", "x", 0, true},
		{"30000000", "-1", 0, true},
		{"0", "", 0, true},
		{"-5", "", 0, true},
		{"soon", "", 0, true},
		{"99999999999999999999", "", 0, true},
	} {
		got, err := watchdogTimeout(c.usec, c.pid, 42)
		if c.bad {
			assert.Error(t, err, "%q %q", c.usec, c.pid)
			continue
		}
		require.NoError(t, err, "%q %q", c.usec, c.pid)
		assert.Equal(t, c.want, got, "%q %q", c.usec, c.pid)
	}
}

func FuzzParseDatagram(f *testing.F) {
	for _, s := range []string{"READY=1", "STATUS=x\nREADY=1\n", "READY=1\x00", "=\n=\n", "STATUS=\xff\x01"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		lines, ok := parseDatagram(b)
		if !ok {
			if len(b) <= maxDatagram && bytes.IndexByte(b, 0) < 0 {
				t.Fatalf("valid datagram %q refused", b)
			}
			return
		}
		for _, l := range lines {
			k, _, found := strings.Cut(l, "=")
			if !found || k == "" || strings.Contains(l, "\n") {
				t.Fatalf("bad line %q from %q", l, b)
			}
			if !bytes.Contains(append(append([]byte{'\n'}, b...), '\n'), []byte("\n"+l+"\n")) {
				t.Fatalf("line %q not in %q", l, b)
			}
		}
		p := statusLine(string(b))
		for i := 0; i < len(p); i++ {
			if p[i] < 0x20 || p[i] >= 0x7f {
				t.Fatalf("unprintable %q", p)
			}
		}
	})
}
