package wire_test

import (
	"errors"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/handoff-go/handoff/internal/wire"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
	tests := []struct {
		line   string
		reason string // for a *FailedError
		msg    string // for a *MessageError
		ok     bool
	}{
		{line: "ready", ok: true},
		{line: "failed: bad config", reason: "bad config"},
		{line: "failed:bad config", reason: "bad config"},
		{line: "failed:   padded\t ", reason: "padded"},
		{line: "failed: a\tb\x1b[2Jc\x7f", reason: "a b [2Jc"},
		{line: "failed: caf\u00e9 \u2713", reason: "caf\u00e9 \u2713"},
		{line: "failed:", reason: ""},
		{line: "failed: " + strings.Repeat("x", wire.MaxReason), reason: strings.Repeat("x", wire.MaxReason)},
		{line: "failed: " + strings.Repeat("x", wire.MaxReason+10), reason: strings.Repeat("x", wire.MaxReason)},
		{line: "", msg: ""},
		{line: "Ready", msg: "Ready"},
		{line: "ready ", msg: "ready "},
		{line: " ready", msg: " ready"},
		{line: "ready\r", msg: "ready\r"},
		{line: "readyready", msg: "readyready"},
		{line: "hello", msg: "hello"},
		{line: "fail: x", msg: "fail: x"},
		{line: "FAILED: x", msg: "FAILED: x"},
		{line: strings.Repeat("z", 100), msg: strings.Repeat("z", 64)},
	}
	for _, tt := range tests {
		name := tt.line
		if len(name) > 20 {
			name = name[:20] + "..."
		}
		t.Run(name, func(t *testing.T) {
			err := wire.Parse([]byte(tt.line))
			var failed *wire.FailedError
			var bad *wire.MessageError
			switch {
			case tt.ok:
				assert.NoError(t, err)
			case errors.As(err, &failed):
				assert.Equal(t, tt.reason, failed.Reason)
				assert.Equal(t, "reported failure: "+tt.reason, err.Error())
				assert.Empty(t, tt.msg, "want a MessageError, got %v", err)
			case errors.As(err, &bad):
				assert.Equal(t, tt.msg, bad.Msg)
				assert.Contains(t, err.Error(), "malformed message")
				assert.Empty(t, tt.reason, "want a FailedError, got %v", err)
			default:
				t.Fatalf("Parse(%q) = %T %v", tt.line, err, err)
			}
		})
	}
}

func TestSanitize(t *testing.T) {
	tests := []struct{ in, want string }{
		{"bad config\nline2", "bad config line2"},
		{"  x  ", "x"},
		{"\x00\x01\x7f", ""},
		{"a\r\nb", "a  b"},
		{"tab\there", "tab here"},
		{"caf\u00e9", "caf\u00e9"},
		// C1 control characters (here NEL and CSI) are control characters
		// too: a CSI would reach a terminal through a logged error.
		{"a\u0085b", "a b"},
		{"x\u009b31mred", "x 31mred"},
		// Bytes that are not UTF-8 are left alone: they are not characters.
		{"a\x85b", "a\x85b"},
		{strings.Repeat("x", wire.MaxReason+1), strings.Repeat("x", wire.MaxReason)},
		// Leading space does not eat into the limit: " " + reason, as
		// it arrives after "failed:", comes back whole.
		{" " + strings.Repeat("x", wire.MaxReason), strings.Repeat("x", wire.MaxReason)},
		{"\n\n" + strings.Repeat("y", wire.MaxReason) + "\n", strings.Repeat("y", wire.MaxReason)},
		// Cut before a space: no trailing space.
		{strings.Repeat("x", wire.MaxReason-1) + " yz", strings.Repeat("x", wire.MaxReason-1)},
		// Two-byte runes: 2048 is even, so exactly 1024 fit.
		{strings.Repeat("\u00e9", 2000), strings.Repeat("\u00e9", wire.MaxReason/2)},
		// Three-byte runes after one ASCII byte: 682 fit in 2047 bytes.
		{"a" + strings.Repeat("\u20ac", 1000), "a" + strings.Repeat("\u20ac", 682)},
		// Four-byte runes: 512 fit exactly.
		{strings.Repeat("\U0001F600", 600), strings.Repeat("\U0001F600", 512)},
	}
	for _, tt := range tests {
		got := wire.Sanitize(tt.in)
		assert.Equal(t, tt.want, got, "Sanitize(%.40q)", tt.in)
		assert.Equal(t, got, wire.Sanitize(got), "Sanitize is not idempotent on %.40q", tt.in)
	}
}

// checkReason asserts the promises made about a sanitised reason.
func checkReason(t *testing.T, in, reason string) {
	t.Helper()
	if len(reason) > wire.MaxReason {
		t.Fatalf("reason is %d bytes, more than %d", len(reason), wire.MaxReason)
	}
	for i := 0; i < len(reason); i++ {
		if c := reason[i]; c < 0x20 || c == 0x7f {
			t.Fatalf("reason %q contains control byte %#x", reason, c)
		}
	}
	for _, r := range reason {
		if r != utf8.RuneError && unicode.IsControl(r) {
			t.Fatalf("reason %q contains control character %U", reason, r)
		}
	}
	if reason != strings.TrimSpace(reason) {
		t.Fatalf("reason %q has surrounding space", reason)
	}
	if utf8.ValidString(in) && !utf8.ValidString(reason) {
		t.Fatalf("valid UTF-8 %q became invalid %q", in, reason)
	}
	if strings.ContainsRune(reason, '\n') {
		t.Fatalf("reason %q spans lines", reason)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"ready", "failed: bad config", "failed:", "failed:\x00\x7f", "hello", "",
		"failed: " + strings.Repeat("\u00e9", 1500), "failed: \u0085\u009b", "ready\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		err := wire.Parse(line)
		var failed *wire.FailedError
		var bad *wire.MessageError
		switch {
		case err == nil:
			if string(line) != "ready" {
				t.Fatalf("Parse(%q) = nil", line)
			}
		case errors.As(err, &failed):
			if !strings.HasPrefix(string(line), "failed:") {
				t.Fatalf("Parse(%q) = %v", line, err)
			}
			checkReason(t, string(line[len("failed:"):]), failed.Reason)
		case errors.As(err, &bad):
			if len(bad.Msg) > 64 {
				t.Fatalf("MessageError carries %d bytes", len(bad.Msg))
			}
		default:
			t.Fatalf("Parse(%q) = %T %v", line, err, err)
		}
	})
}

func FuzzSanitize(f *testing.F) {
	for _, s := range []string{"", "bad config\nline2", " x ", strings.Repeat("\u20ac", 700), "\xff\xfe", "a\u0085b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := wire.Sanitize(s)
		checkReason(t, s, got)
		if again := wire.Sanitize(got); again != got {
			t.Fatalf("Sanitize not idempotent: %q -> %q -> %q", s, got, again)
		}
		// What Fail puts on the wire comes back from Parse unchanged.
		err := wire.Parse([]byte("failed: " + got))
		var failed *wire.FailedError
		require.ErrorAs(t, err, &failed)
		if failed.Reason != got {
			t.Fatalf("reason %q came back as %q", got, failed.Reason)
		}
	})
}
