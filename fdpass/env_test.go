package fdpass

import (
	"errors"
	"os"
	"os/exec"
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

// envFromList turns "K=v" entries, as produced by Handover.Env, into a
// fakeEnv. Later entries win, as in os/exec.
func envFromList(t testing.TB, list []string) fakeEnv {
	t.Helper()
	e := fakeEnv{}
	for _, kv := range list {
		k, v, ok := strings.Cut(kv, "=")
		require.True(t, ok, "entry %q has no '='", kv)
		e[k] = v
	}
	return e
}

// devNull returns an open file whose identity does not matter.
func devNull(t testing.TB) *os.File {
	t.Helper()
	f, err := os.Open(os.DevNull)
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() })
	return f
}

func TestParseEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     fakeEnv
		names   []string
		control []string
		meta    map[string]string
		handoff bool
	}{
		{name: "no variables", env: fakeEnv{}},
		{
			name:  "two named",
			env:   fakeEnv{EnvListenFDs: "2", EnvListenFDNames: "tcp/127.0.0.1%3A8080:metrics"},
			names: []string{"tcp/127.0.0.1%3A8080", "metrics"},
		},
		{
			name:  "names missing are unknown",
			env:   fakeEnv{EnvListenFDs: "2"},
			names: []string{"unknown", "unknown"},
		},
		{
			name: "zero with empty names",
			env:  fakeEnv{EnvListenFDs: "0", EnvListenFDNames: ""},
		},
		{
			name:  "duplicate names are systemd's business",
			env:   fakeEnv{EnvListenFDs: "2", EnvListenFDNames: "web:web"},
			names: []string{"web", "web"},
		},
		{
			name:  "leading zeros",
			env:   fakeEnv{EnvListenFDs: "01", EnvListenFDNames: "a"},
			names: []string{"a"},
		},
		{
			name: "handoff with control and meta",
			env: fakeEnv{
				EnvListenFDs:     "1",
				EnvListenFDNames: "web",
				EnvHandoff:       "v1;control=ready,stderr;gen=4;build-id=a=b c",
			},
			names:   []string{"web"},
			control: []string{"ready", "stderr"},
			meta:    map[string]string{"gen": "4", "build-id": "a=b c"},
			handoff: true,
		},
		{
			name:    "handoff version only",
			env:     fakeEnv{EnvHandoff: "v1"},
			meta:    map[string]string{},
			handoff: true,
		},
		{
			name:    "handoff empty control",
			env:     fakeEnv{EnvHandoff: "v1;control=;gen="},
			meta:    map[string]string{"gen": ""},
			handoff: true,
		},
		{
			name:    "control without listed files",
			env:     fakeEnv{EnvHandoff: "v1;control=ready"},
			control: []string{"ready"},
			meta:    map[string]string{},
			handoff: true,
		},
		{
			name:  "LISTEN_PID is this process",
			env:   fakeEnv{EnvListenPID: "4242", EnvListenFDs: "1", EnvListenFDNames: "a"},
			names: []string{"a"},
		},
		{
			name: "LISTEN_PID is another process",
			env:  fakeEnv{EnvListenPID: "4243", EnvListenFDs: "1", EnvListenFDNames: "a", EnvHandoff: "v1;control=x"},
		},
		{
			name: "LISTEN_PID of another process hides garbage",
			env:  fakeEnv{EnvListenPID: "1", EnvListenFDs: "abc", EnvHandoff: "v9"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := parseEnv(tt.env.lookup, testPID)
			require.NoError(t, err)
			require.NotNil(t, m)
			assert.Equal(t, tt.names, nilIfEmpty(m.names), "names")
			assert.Equal(t, tt.control, nilIfEmpty(m.control), "control")
			assert.Equal(t, tt.meta, m.meta, "meta")
			assert.Equal(t, tt.handoff, m.handoff, "handoff")
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
	long := strings.Repeat("n", maxNameLen+1)
	tests := []struct {
		name string
		env  fakeEnv
		bad  string // the variable the error must name
	}{
		{"fds letters", fakeEnv{EnvListenFDs: "abc"}, EnvListenFDs},
		{"fds negative", fakeEnv{EnvListenFDs: "-1"}, EnvListenFDs},
		{"fds plus sign", fakeEnv{EnvListenFDs: "+2"}, EnvListenFDs},
		{"fds leading space", fakeEnv{EnvListenFDs: " 2"}, EnvListenFDs},
		{"fds trailing space", fakeEnv{EnvListenFDs: "2 "}, EnvListenFDs},
		{"fds empty", fakeEnv{EnvListenFDs: ""}, EnvListenFDs},
		{"fds hex", fakeEnv{EnvListenFDs: "0x2"}, EnvListenFDs},
		{"fds huge", fakeEnv{EnvListenFDs: "99999999999999999999999"}, EnvListenFDs},
		{"fds over MaxFiles", fakeEnv{EnvListenFDs: "65537"}, EnvListenFDs},
		{"fds 9 digits", fakeEnv{EnvListenFDs: "999999999"}, EnvListenFDs},
		{"fewer names", fakeEnv{EnvListenFDs: "2", EnvListenFDNames: "a"}, EnvListenFDNames},
		{"more names", fakeEnv{EnvListenFDs: "1", EnvListenFDNames: "a:b"}, EnvListenFDNames},
		{"names without fds", fakeEnv{EnvListenFDNames: "a"}, EnvListenFDNames},
		{"empty name for one fd", fakeEnv{EnvListenFDs: "1", EnvListenFDNames: ""}, EnvListenFDNames},
		{"empty name in middle", fakeEnv{EnvListenFDs: "3", EnvListenFDNames: "a::b"}, EnvListenFDNames},
		{"name with newline", fakeEnv{EnvListenFDs: "1", EnvListenFDNames: "a\nb"}, EnvListenFDNames},
		{"name with control char", fakeEnv{EnvListenFDs: "2", EnvListenFDNames: "ok:a\x01b"}, EnvListenFDNames},
		{"name with DEL", fakeEnv{EnvListenFDs: "1", EnvListenFDNames: "a\x7f"}, EnvListenFDNames},
		{"name not ASCII", fakeEnv{EnvListenFDs: "1", EnvListenFDNames: "caf\u00e9"}, EnvListenFDNames},
		{"name too long", fakeEnv{EnvListenFDs: "1", EnvListenFDNames: long}, EnvListenFDNames},
		{"handoff wrong version", fakeEnv{EnvHandoff: "v2;control="}, EnvHandoff},
		{"handoff empty", fakeEnv{EnvHandoff: ""}, EnvHandoff},
		{"handoff version case", fakeEnv{EnvHandoff: "V1"}, EnvHandoff},
		{"handoff field without =", fakeEnv{EnvHandoff: "v1;gen"}, EnvHandoff},
		{"handoff empty field", fakeEnv{EnvHandoff: "v1;;gen=1"}, EnvHandoff},
		{"handoff duplicate control", fakeEnv{EnvHandoff: "v1;control=a;control=b"}, EnvHandoff},
		{"handoff duplicate empty control", fakeEnv{EnvHandoff: "v1;control=;control="}, EnvHandoff},
		{"handoff duplicate control name", fakeEnv{EnvHandoff: "v1;control=a,a"}, EnvHandoff},
		{"handoff duplicate key", fakeEnv{EnvHandoff: "v1;gen=1;gen=2"}, EnvHandoff},
		{"handoff upper-case key", fakeEnv{EnvHandoff: "v1;Gen=1"}, EnvHandoff},
		{"handoff empty key", fakeEnv{EnvHandoff: "v1;=1"}, EnvHandoff},
		{"handoff key with dot", fakeEnv{EnvHandoff: "v1;a.b=1"}, EnvHandoff},
		{"handoff value with control char", fakeEnv{EnvHandoff: "v1;gen=1\x1b[2J"}, EnvHandoff},
		{"handoff control name with =", fakeEnv{EnvHandoff: "v1;control=a=b"}, EnvHandoff},
		{"handoff control name with :", fakeEnv{EnvHandoff: "v1;control=a:b"}, EnvHandoff},
		{"handoff control name empty (trailing ,)", fakeEnv{EnvHandoff: "v1;control=a,"}, EnvHandoff},
		{"handoff control name empty (,,)", fakeEnv{EnvHandoff: "v1;control=a,,b"}, EnvHandoff},
		{"handoff control name too long", fakeEnv{EnvHandoff: "v1;control=" + long}, EnvHandoff},
		{"too many in all", fakeEnv{EnvListenFDs: "65536", EnvHandoff: "v1;control=ready"}, EnvHandoff},
		{"pid zero", fakeEnv{EnvListenPID: "0", EnvListenFDs: "1"}, EnvListenPID},
		{"pid letters", fakeEnv{EnvListenPID: "x"}, EnvListenPID},
		{"pid empty", fakeEnv{EnvListenPID: ""}, EnvListenPID},
		{"pid negative", fakeEnv{EnvListenPID: "-4242"}, EnvListenPID},
		{"pid with space", fakeEnv{EnvListenPID: "4242 "}, EnvListenPID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := parseEnv(tt.env.lookup, testPID)
			require.Error(t, err)
			assert.Nil(t, m)
			var envErr *EnvError
			require.True(t, errors.As(err, &envErr), "want *EnvError, got %T: %v", err, err)
			assert.Equal(t, tt.bad, envErr.Var)
			assert.Contains(t, err.Error(), tt.bad+"=")
			assert.NotEmpty(t, envErr.Reason)
			assert.LessOrEqual(t, len(envErr.Value), 80+len("..."), "value is shortened")
		})
	}
}

func TestCheckName(t *testing.T) {
	good := []string{"a", "web", "tcp/127.0.0.1%3A8080", "unix/run/x.sock", "a b", "~", strings.Repeat("x", maxNameLen)}
	for _, n := range good {
		assert.NoError(t, CheckName(n), "%q", n)
	}
	bad := []string{"", "a:b", ":", "a\x00", "\t", "a\n", "\x7f", "\u00e9", strings.Repeat("x", maxNameLen+1)}
	for _, n := range bad {
		assert.Error(t, CheckName(n), "%q", n)
	}
}

func TestHandoverEnvRoundTrip(t *testing.T) {
	f := devNull(t)
	tests := []struct {
		name string
		h    Handover
	}{
		{name: "empty"},
		{
			name: "files only",
			h:    Handover{Files: []Named{{"tcp/127.0.0.1%3A8080", f}, {"metrics", f}}},
		},
		{
			name: "everything",
			h: Handover{
				Files:   []Named{{"web", f}, {"dns", f}, {"unix/run/a.sock", f}},
				Control: []Named{{"ready", f}, {"stderr", f}},
				Meta:    map[string]string{"gen": "4", "build-id": "sha=abc def", "empty": "", "utf8": "caf\u00e9"},
			},
		},
		{
			name: "control only",
			h:    Handover{Control: []Named{{"ready", f}}},
		},
		{
			name: "longest name",
			h:    Handover{Files: []Named{{strings.Repeat("n", maxNameLen), f}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, files, err := tt.h.Env()
			require.NoError(t, err)
			require.Len(t, files, len(tt.h.Files)+len(tt.h.Control))
			for _, kv := range env {
				assert.NotContains(t, kv, "\x00")
			}
			m, err := parseEnv(envFromList(t, env).lookup, testPID)
			require.NoError(t, err)
			var names, control []string
			for _, n := range tt.h.Files {
				names = append(names, n.Name)
			}
			for _, n := range tt.h.Control {
				control = append(control, n.Name)
			}
			assert.Equal(t, names, nilIfEmpty(m.names))
			assert.Equal(t, control, nilIfEmpty(m.control))
			meta := tt.h.Meta
			if meta == nil {
				meta = map[string]string{}
			}
			assert.Equal(t, meta, m.meta)
			assert.True(t, m.handoff)
		})
	}
}

func TestHandoverEnvFileOrder(t *testing.T) {
	a, b, c := devNull(t), devNull(t), devNull(t)
	h := Handover{Files: []Named{{"a", a}, {"b", b}}, Control: []Named{{"c", c}}}
	_, files, err := h.Env()
	require.NoError(t, err)
	assert.Equal(t, []*os.File{a, b, c}, files)
}

func TestHandoverEnvRejects(t *testing.T) {
	f := devNull(t)
	tests := []struct {
		name string
		h    Handover
	}{
		{"name with colon", Handover{Files: []Named{{"a:b", f}}}},
		{"empty name", Handover{Files: []Named{{"", f}}}},
		{"name too long", Handover{Files: []Named{{strings.Repeat("x", maxNameLen+1), f}}}},
		{"name with newline", Handover{Files: []Named{{"a\nb", f}}}},
		{"duplicate names", Handover{Files: []Named{{"web", f}, {"web", f}}}},
		{"nil file", Handover{Files: []Named{{"web", nil}}}},
		{"nil control file", Handover{Control: []Named{{"ready", nil}}}},
		{"control name with ','", Handover{Control: []Named{{"a,b", f}}}},
		{"control name with ';'", Handover{Control: []Named{{"a;b", f}}}},
		{"control name with '='", Handover{Control: []Named{{"a=b", f}}}},
		{"control name with ':'", Handover{Control: []Named{{"a:b", f}}}},
		{"empty control name", Handover{Control: []Named{{"", f}}}},
		{"duplicate control names", Handover{Control: []Named{{"ready", f}, {"ready", f}}}},
		{"meta key control", Handover{Meta: map[string]string{"control": "x"}}},
		{"meta key empty", Handover{Meta: map[string]string{"": "x"}}},
		{"meta key upper-case", Handover{Meta: map[string]string{"Gen": "1"}}},
		{"meta key with '='", Handover{Meta: map[string]string{"a=b": "1"}}},
		{"meta key with ';'", Handover{Meta: map[string]string{"a;b": "1"}}},
		{"meta value with ';'", Handover{Meta: map[string]string{"gen": "1;control=x"}}},
		{"meta value with newline", Handover{Meta: map[string]string{"gen": "1\n"}}},
		{"meta value with DEL", Handover{Meta: map[string]string{"gen": "\x7f"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, files, err := tt.h.Env()
			require.Error(t, err)
			assert.Nil(t, env)
			assert.Nil(t, files)
			assert.True(t, strings.HasPrefix(err.Error(), "fdpass: "), "error %q lacks the package prefix", err)

			cmd := exec.Command("true")
			cmd.Env = []string{"KEEP=1"}
			require.Error(t, tt.h.Apply(cmd))
			assert.Equal(t, []string{"KEEP=1"}, cmd.Env, "Apply changed the command on error")
			assert.Nil(t, cmd.ExtraFiles)
		})
	}
}

func TestApply(t *testing.T) {
	f := devNull(t)
	h := Handover{Files: []Named{{"web", f}}, Control: []Named{{"ready", f}}, Meta: map[string]string{"gen": "2"}}

	t.Run("explicit env", func(t *testing.T) {
		cmd := exec.Command("true")
		cmd.Env = []string{"A=1", "LISTEN_FDS=7", "LISTEN_PID=1", "LISTEN_FDNAMES=x", "HANDOFF=v1", "LISTEN_FDSX=keep", "B=2"}
		require.NoError(t, h.Apply(cmd))
		assert.Equal(t, []string{
			"A=1", "LISTEN_FDSX=keep", "B=2",
			"LISTEN_FDS=1", "LISTEN_FDNAMES=web", "HANDOFF=v1;control=ready;gen=2",
		}, cmd.Env)
		assert.Equal(t, []*os.File{f, f}, cmd.ExtraFiles)
	})

	t.Run("nil env starts from os.Environ", func(t *testing.T) {
		t.Setenv("FDPASS_TEST_MARKER", "yes")
		t.Setenv(EnvListenPID, "1")
		cmd := exec.Command("true")
		require.NoError(t, h.Apply(cmd))
		assert.Contains(t, cmd.Env, "FDPASS_TEST_MARKER=yes")
		assert.NotContains(t, cmd.Env, "LISTEN_PID=1")
		assert.Contains(t, cmd.Env, "LISTEN_FDS=1")
	})
}

func TestStripEnv(t *testing.T) {
	in := []string{"LISTEN_FDS=1", "PATH=/bin", "LISTEN_FDNAMES=a", "LISTEN_PID=3", "HANDOFF=v1", "HANDOFFX=1", "NOEQUALS"}
	assert.Equal(t, []string{"PATH=/bin", "HANDOFFX=1", "NOEQUALS"}, StripEnv(in))
	assert.Empty(t, StripEnv(nil))
}

func TestErrorMessages(t *testing.T) {
	e := &EnvError{Var: EnvListenFDs, Value: "x", Reason: "not a decimal count"}
	assert.Contains(t, e.Error(), `LISTEN_FDS="x"`)
	assert.Contains(t, e.Error(), "not a decimal count")

	cause := errors.New("not a socket")
	fe := &FDError{FD: 3, Name: "web", Want: "listening tcp socket", Err: cause}
	assert.Equal(t, `fdpass: inherited fd 3 ("web") is not a listening tcp socket: not a socket`, fe.Error())
	assert.ErrorIs(t, fe, cause)
}
