package control

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseRequest(t *testing.T) {
	for _, ok := range []string{`{"cmd":"status"}`, `{"cmd":"upgrade"}` + "\n", ` {"cmd": "upgrade", "extra": 1} `} {
		req, err := ParseRequest([]byte(ok))
		require.NoError(t, err, ok)
		assert.NotEmpty(t, req.Cmd)
	}
	for _, bad := range []string{"", "not json", `{"cmd":"reboot"}`, `{"cmd":1}`, `[]`, `{"cmd":"status"} {"cmd":"upgrade"}`, strings.Repeat("x", MaxRequest+1)} {
		_, err := ParseRequest([]byte(bad))
		require.Error(t, err, "%.40q", bad)
		assert.True(t, strings.HasPrefix(err.Error(), "control: "), err.Error())
	}
}

// FuzzParseRequest: any line gets a known command or an error that says
// what to send, never a panic.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{`{"cmd":"status"}`, `{"cmd":"upgrade"}`, `{"cmd":"x"}`, "{", `{"cmd":"status","cmd":"upgrade"}`, "\xff"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := ParseRequest(b)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "control: ") || len(err.Error()) > 400 {
				t.Fatalf("error %q", err)
			}
			return
		}
		if req.Cmd != CmdStatus && req.Cmd != CmdUpgrade {
			t.Fatalf("accepted command %q", req.Cmd)
		}
	})
}
