package wire

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestKeys(t *testing.T) {
	// These names are the protocol: every build ever released looks its
	// sockets up by them.
	assert.Equal(t, "tcp/127.0.0.1%3A8080", Key("tcp", "127.0.0.1:8080"))
	assert.Equal(t, "udp/%3A53", Key("udp", ":53"))
	assert.Equal(t, "unix//run/a%25b.sock", Key("unix", "/run/a%b.sock"))
	assert.Equal(t, "file/lock", FileKey("lock"))
	assert.Equal(t, "control//run/app.sock", ControlKey("/run/app.sock"))
}

func TestParseHandoff(t *testing.T) {
	for _, c := range []struct {
		in      string
		control []string
		meta    map[string]string
	}{
		{"v1", nil, map[string]string{}},
		{"v1;control=;gen=", nil, map[string]string{"gen": ""}},
		{"v1;control=ready,stderr;gen=4;build-id=a=b c", []string{"ready", "stderr"}, map[string]string{"gen": "4", "build-id": "a=b c"}},
		// What aa23f8a sends.
		{"v1;control=ready,stderr,stderr-pipe,elder-12;gen=3;go=1;notify=1;ppid=40", []string{"ready", "stderr", "stderr-pipe", "elder-12"},
			map[string]string{"gen": "3", "go": "1", "notify": "1", "ppid": "40"}},
	} {
		control, meta, err := parseHandoff(c.in)
		require.NoError(t, err, c.in)
		assert.Equal(t, c.control, control, c.in)
		assert.Equal(t, c.meta, meta, c.in)
	}
	long := strings.Repeat("n", 256)
	for _, bad := range []string{
		"v2;control=", "", "V1", "v1;gen", "v1;;gen=1", "v1;control=a;control=b", "v1;control=;control=",
		"v1;control=a,a", "v1;gen=1;gen=2", "v1;Gen=1", "v1;=1", "v1;a.b=1", "v1;gen=1\x1b[2J",
		"v1;control=a=b", "v1;control=a:b", "v1;control=a,", "v1;control=a,,b", "v1;control=" + long,
	} {
		_, _, err := parseHandoff(bad)
		assert.Error(t, err, "%q", bad)
	}
}

func TestHandoverEnv(t *testing.T) {
	h := Handover{
		Files:   []string{"tcp/127.0.0.1%3A8080", "file/lock"},
		Control: []string{CtlReady, CtlStderr, CtlElderPrefix + "12"},
		Meta:    map[string]string{MetaGen: "2", MetaGo: "1", MetaProto: "2"},
	}
	env, err := h.Env()
	require.NoError(t, err)
	assert.Equal(t, []string{
		"LISTEN_FDS=2",
		"LISTEN_FDNAMES=tcp/127.0.0.1%3A8080:file/lock",
		"HANDOFF=v1;control=ready,stderr,elder-12;gen=2;go=1;proto=2",
	}, env)
	control, meta, err := parseHandoff(strings.TrimPrefix(env[2], "HANDOFF="))
	require.NoError(t, err)
	assert.Equal(t, h.Control, control)
	assert.Equal(t, h.Meta, meta)

	for name, bad := range map[string]Handover{
		"name with colon":  {Files: []string{"a:b"}},
		"empty name":       {Files: []string{""}},
		"duplicate names":  {Files: []string{"web", "web"}},
		"control with ','": {Control: []string{"a,b"}},
		"duplicate ctl":    {Control: []string{"ready", "ready"}},
		"meta key control": {Meta: map[string]string{"control": "x"}},
		"meta upper-case":  {Meta: map[string]string{"Gen": "1"}},
		"meta value ';'":   {Meta: map[string]string{"gen": "1;control=x"}},
	} {
		_, err := bad.Env()
		assert.Error(t, err, name)
	}
}

func TestStripEnv(t *testing.T) {
	in := []string{"LISTEN_FDS=1", "PATH=/bin", "LISTEN_FDNAMES=a", "LISTEN_PID=3", "HANDOFF=v1", "HANDOFFX=1", EnvTableflip + "=yes"}
	assert.Equal(t, []string{"PATH=/bin", "HANDOFFX=1"}, StripEnv(in))
}

// setEnv sets the variables for the test and unsets the others Prepare
// reads.
func setEnv(t *testing.T, kv map[string]string) {
	t.Helper()
	for _, k := range []string{EnvListenFDs, EnvListenFDNames, EnvListenPID, EnvHandoff, EnvTableflip} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	for k, v := range kv {
		t.Setenv(k, v)
	}
}

func lookup(k string) string {
	v, ok := os.LookupEnv(k)
	if !ok {
		return "<unset>"
	}
	return v
}

// TestPrepare: a handoff parent's description becomes plain socket
// activation, the control files listed after the named ones, for fdpass.
func TestPrepare(t *testing.T) {
	t.Run("first generation", func(t *testing.T) {
		setEnv(t, map[string]string{EnvListenFDs: "1", EnvListenFDNames: "web"}) // systemd's, left alone
		in, err := Prepare()
		require.NoError(t, err)
		assert.Equal(t, Alone, in.Origin)
		assert.Equal(t, "1", lookup(EnvListenFDs))
		assert.Equal(t, "web", lookup(EnvListenFDNames))
	})
	t.Run("handoff parent", func(t *testing.T) {
		setEnv(t, map[string]string{EnvListenFDs: "1", EnvListenFDNames: "tcp/%3A80",
			EnvHandoff: "v1;control=ready,stderr;gen=3;go=1"})
		in, err := Prepare()
		require.NoError(t, err)
		assert.Equal(t, Handoff, in.Origin)
		assert.Equal(t, map[string]string{"gen": "3", "go": "1"}, in.Meta)
		assert.Equal(t, "3", lookup(EnvListenFDs))
		assert.Equal(t, "tcp/%3A80:handoff-control/ready:handoff-control/stderr", lookup(EnvListenFDNames))
		assert.Equal(t, "<unset>", lookup(EnvHandoff))
	})
	t.Run("control only", func(t *testing.T) {
		setEnv(t, map[string]string{EnvHandoff: "v1;control=ready"})
		_, err := Prepare()
		require.NoError(t, err)
		assert.Equal(t, "1", lookup(EnvListenFDs))
		assert.Equal(t, "handoff-control/ready", lookup(EnvListenFDNames))
	})
	t.Run("for another process", func(t *testing.T) {
		setEnv(t, map[string]string{EnvListenPID: "1", EnvListenFDs: "1", EnvHandoff: "v1;control=ready"})
		in, err := Prepare()
		require.NoError(t, err)
		assert.Equal(t, Alone, in.Origin)
		assert.Equal(t, "<unset>", lookup(EnvHandoff))
		assert.Equal(t, "1", lookup(EnvListenFDs), "left for fdpass to ignore")
	})
	t.Run("tableflip's variable without its pipes", func(t *testing.T) {
		setEnv(t, map[string]string{EnvTableflip: "yes"})
		in, err := Prepare()
		require.NoError(t, err)
		assert.Equal(t, Alone, in.Origin)
		assert.Equal(t, "<unset>", lookup(EnvTableflip))
	})
	for name, env := range map[string]map[string]string{
		"bad version":    {EnvHandoff: "v9"},
		"bad count":      {EnvListenFDs: "x", EnvHandoff: "v1;control=ready"},
		"names mismatch": {EnvListenFDs: "2", EnvListenFDNames: "a", EnvHandoff: "v1;control=ready"},
	} {
		t.Run(name, func(t *testing.T) {
			setEnv(t, env)
			_, err := Prepare()
			require.Error(t, err)
			assert.Contains(t, err.Error(), "malformed")
		})
	}
}

// FuzzParseHandoff: whatever parses can be written again and parses to
// the same.
func FuzzParseHandoff(f *testing.F) {
	for _, s := range []string{
		"v1", "v1;control=ready,stderr;gen=4", "v1;control=;gen=", "v1;control=a,a", "v9;;",
		"v1;control=ready,stderr,stderr-pipe,elder-12;gen=3;go=1;notify=1;ppid=40;proto=2",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		control, meta, err := parseHandoff(v)
		if err != nil {
			return
		}
		for _, c := range control {
			if checkControlName(c) != nil {
				t.Fatalf("control name %q accepted", c)
			}
		}
		env, err := (&Handover{Control: control, Meta: meta}).Env()
		if err != nil {
			t.Fatalf("accepted %q cannot be written again: %v", v, err)
		}
		c2, m2, err := parseHandoff(strings.TrimPrefix(env[2], EnvHandoff+"="))
		if err != nil {
			t.Fatalf("written form %q does not parse: %v", env[2], err)
		}
		if strings.Join(c2, ",") != strings.Join(control, ",") || len(m2) != len(meta) {
			t.Fatalf("round trip changed %q: %q %v -> %q %v", v, control, meta, c2, m2)
		}
		for k, val := range meta {
			if m2[k] != val {
				t.Fatalf("round trip changed %q=%q to %q", k, val, m2[k])
			}
		}
	})
}

func TestEscapeMeta(t *testing.T) {
	for _, s := range []string{"", "/srv/app/bin/app", "/srv/a;b/100%/x\ny\x7f", "%41"} {
		e := EscapeMeta(s)
		assert.NoError(t, checkMeta("path", e), "%q -> %q", s, e)
		got, err := UnescapeMeta(e)
		require.NoError(t, err)
		assert.Equal(t, s, got)
	}
	for _, bad := range []string{"%", "%4", "%zz", "a%4"} {
		_, err := UnescapeMeta(bad)
		assert.Error(t, err, bad)
	}
}
