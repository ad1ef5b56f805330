package fdpass

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const testPID = 4242

// fakeEnv is a lookupFunc over a map; a key that is absent is unset.
type fakeEnv map[string]string

func (e fakeEnv) lookup(k string) (string, bool) {
	v, ok := e[k]
	return v, ok
}

func TestParseEnv(t *testing.T) {
	tests := []struct {
		name  string
		env   fakeEnv
		names []string
	}{
		{name: "no variables", env: fakeEnv{}},
		{
			name:  "two named",
			env:   fakeEnv{envListenFDs: "2", envListenFDNames: "tcp/127.0.0.1%3A8080:metrics"},
			names: []string{"tcp/127.0.0.1%3A8080", "metrics"},
		},
		{
			name:  "names missing are unknown",
			env:   fakeEnv{envListenFDs: "2"},
			names: []string{"unknown", "unknown"},
		},
		{name: "zero with empty names", env: fakeEnv{envListenFDs: "0", envListenFDNames: ""}},
		{
			name:  "duplicate names are systemd's business",
			env:   fakeEnv{envListenFDs: "2", envListenFDNames: "web:web"},
			names: []string{"web", "web"},
		},
		{
			name:  "leading zeros",
			env:   fakeEnv{envListenFDs: "01", envListenFDNames: "a"},
			names: []string{"a"},
		},
		{
			name:  "LISTEN_PID is this process",
			env:   fakeEnv{envListenPID: "4242", envListenFDs: "1", envListenFDNames: "a"},
			names: []string{"a"},
		},
		{
			name: "LISTEN_PID is another process",
			env:  fakeEnv{envListenPID: "4243", envListenFDs: "1", envListenFDNames: "a"},
		},
		{
			name: "LISTEN_PID of another process hides garbage",
			env:  fakeEnv{envListenPID: "1", envListenFDs: "abc"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			names, err := parseEnv(tt.env.lookup, testPID)
			require.NoError(t, err)
			assert.Equal(t, tt.names, nilIfEmpty(names))
		})
	}
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

func TestParseEnvMalformed(t *testing.T) {
	long := strings.Repeat("n", 256)
	tests := []struct {
		name string
		env  fakeEnv
		bad  string // the variable the error must name
	}{
		{"fds letters", fakeEnv{envListenFDs: "abc"}, envListenFDs},
		{"fds negative", fakeEnv{envListenFDs: "-1"}, envListenFDs},
		{"fds plus sign", fakeEnv{envListenFDs: "+2"}, envListenFDs},
		{"fds leading space", fakeEnv{envListenFDs: " 2"}, envListenFDs},
		{"fds trailing space", fakeEnv{envListenFDs: "2 "}, envListenFDs},
		{"fds empty", fakeEnv{envListenFDs: ""}, envListenFDs},
		{"fds hex", fakeEnv{envListenFDs: "0x2"}, envListenFDs},
		{"fds huge", fakeEnv{envListenFDs: "99999999999999999999999"}, envListenFDs},
		{"fds over the limit", fakeEnv{envListenFDs: "65537"}, envListenFDs},
		{"fds 9 digits", fakeEnv{envListenFDs: "999999999"}, envListenFDs},
		{"fewer names", fakeEnv{envListenFDs: "2", envListenFDNames: "a"}, envListenFDNames},
		{"more names", fakeEnv{envListenFDs: "1", envListenFDNames: "a:b"}, envListenFDNames},
		{"names without fds", fakeEnv{envListenFDNames: "a"}, envListenFDNames},
		{"empty name for one fd", fakeEnv{envListenFDs: "1", envListenFDNames: ""}, envListenFDNames},
		{"empty name in middle", fakeEnv{envListenFDs: "3", envListenFDNames: "a::b"}, envListenFDNames},
		{"name with newline", fakeEnv{envListenFDs: "1", envListenFDNames: "a\nb"}, envListenFDNames},
		{"name with control char", fakeEnv{envListenFDs: "2", envListenFDNames: "ok:a\x01b"}, envListenFDNames},
		{"name with DEL", fakeEnv{envListenFDs: "1", envListenFDNames: "a\x7f"}, envListenFDNames},
		{"name not ASCII", fakeEnv{envListenFDs: "1", envListenFDNames: "caf\u00e9"}, envListenFDNames},
		{"name too long", fakeEnv{envListenFDs: "1", envListenFDNames: long}, envListenFDNames},
		{"pid zero", fakeEnv{envListenPID: "0", envListenFDs: "1"}, envListenPID},
		{"pid letters", fakeEnv{envListenPID: "x"}, envListenPID},
		{"pid empty", fakeEnv{envListenPID: ""}, envListenPID},
		{"pid negative", fakeEnv{envListenPID: "-4242"}, envListenPID},
		{"pid with space", fakeEnv{envListenPID: "4242 "}, envListenPID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			names, err := parseEnv(tt.env.lookup, testPID)
			require.ErrorIs(t, err, ErrMalformed)
			assert.Nil(t, names)
			assert.Contains(t, err.Error(), tt.bad+"=")
			assert.Equal(t, 1, strings.Count(err.Error(), "fdpass:"), "one prefix: %v", err)
			assert.Less(t, len(err.Error()), 300, "the value is shortened: %v", err)
		})
	}
}

func TestCheckName(t *testing.T) {
	good := []string{"a", "web", "tcp/127.0.0.1%3A8080", "unix/run/x.sock", "a b", "~", strings.Repeat("x", 255)}
	for _, n := range good {
		assert.NoError(t, checkName(n), "%q", n)
	}
	bad := []string{"", "a:b", ":", "a\x00", "\t", "a\n", "\x7f", "\u00e9", strings.Repeat("x", 256)}
	for _, n := range bad {
		assert.Error(t, checkName(n), "%q", n)
	}
}

func TestStripEnv(t *testing.T) {
	in := []string{"LISTEN_FDS=1", "PATH=/bin", "LISTEN_FDNAMES=a", "LISTEN_PID=3", "LISTEN_FDSX=1", "NOEQUALS"}
	assert.Equal(t, []string{"PATH=/bin", "LISTEN_FDSX=1", "NOEQUALS"}, stripEnv(in))
	assert.Empty(t, stripEnv(nil))
}
