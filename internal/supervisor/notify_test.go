package supervisor

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestSupervisorParseNotify(t *testing.T) {
	for _, c := range []struct {
		in   string
		want notice
	}{
		{"READY=1", notice{Ready: true}},
		{"READY=1\n", notice{Ready: true}},
		{"STATUS=starting\nREADY=1\nMAINPID=12", notice{Ready: true, Status: "starting"}},
		{"READY=0", notice{}},
		{"READY=10", notice{}},
		{"READY", notice{}},
		{" READY=1", notice{}},
		{"\n\nREADY=1\n\n", notice{Ready: true}},
		{"STATUS=a\x1bb\nSTATUS=second", notice{Status: "second"}},
		{"STATUS=a\x1b[31mred", notice{Status: "a?[31mred"}},
		{"READY=1\x00", notice{}},
		{"", notice{}},
		{"READY=1\n" + strings.Repeat("x", maxNotify), notice{}},
	} {
		assert.Equal(t, c.want, parseNotify([]byte(c.in)), "%q", c.in)
	}
	long := parseNotify([]byte("STATUS=" + strings.Repeat("s", 1000)))
	assert.Len(t, long.Status, maxStatus)
}

func FuzzParseNotify(f *testing.F) {
	for _, s := range []string{"READY=1", "STATUS=x\nREADY=1\n", "READY=1\x00", "=\n=\n", "STATUS=\xff\x01"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		n := parseNotify(b)
		if n.Ready && !bytes.Contains(append([]byte{'\n'}, append(b, '\n')...), []byte("\nREADY=1\n")) {
			t.Fatalf("Ready without a READY=1 line in %q", b)
		}
		if len(n.Status) > maxStatus {
			t.Fatalf("status of %d bytes", len(n.Status))
		}
		for i := 0; i < len(n.Status); i++ {
			if c := n.Status[i]; c < 0x20 || c >= 0x7f {
				t.Fatalf("unprintable %q in status %q", c, n.Status)
			}
		}
	})
}
