package fdpass

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
)

// FuzzParseEnv feeds arbitrary values of the four variables to parseEnv.
// Bit i of unset (LISTEN_FDS, LISTEN_FDNAMES, LISTEN_PID, HANDOFF) leaves
// that variable unset, so "unset" and "set but empty" are both explored.
func FuzzParseEnv(f *testing.F) {
	seeds := []struct {
		fds, names, pid, handoff string
		unset                    uint8
	}{
		{"", "", "", "", 0b1111},
		{"2", "tcp/127.0.0.1%3A8080:metrics", "", "v1;control=ready,stderr;gen=4", 0b0100},
		{"2", "", "", "", 0b1110},
		{"1", "web", "4242", "v1", 0},
		{"1", "web", "4243", "v9;;", 0},
		{"0", "", "", "v1;control=", 0b0100},
		{"3", "a::b", "", "v1;control=a,a", 0b0100},
		{"+2", "a:b", "0", "v1;gen", 0},
		{"65536", "", "", "v1;control=x", 0b0110},
		{"1", "a\x01", "", "v1;gen=1;gen=2", 0b0100},
		{"1", "x", "", "v1;build-id=a=b;Gen=1", 0b0100},
	}
	for _, s := range seeds {
		f.Add(s.fds, s.names, s.pid, s.handoff, s.unset)
	}
	null, err := os.Open(os.DevNull)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { null.Close() })

	f.Fuzz(func(t *testing.T, fds, names, pid, handoff string, unset uint8) {
		env := fakeEnv{}
		for i, kv := range [][2]string{{EnvListenFDs, fds}, {EnvListenFDNames, names}, {EnvListenPID, pid}, {EnvHandoff, handoff}} {
			if unset&(1<<i) == 0 {
				env[kv[0]] = kv[1]
			}
		}
		m, err := parseEnv(env.lookup, testPID)
		if err != nil {
			var envErr *EnvError
			if !errors.As(err, &envErr) {
				t.Fatalf("error is %T, want *EnvError: %v", err, err)
			}
			switch envErr.Var {
			case EnvListenFDs, EnvListenFDNames, EnvListenPID, EnvHandoff:
			default:
				t.Fatalf("error names variable %q", envErr.Var)
			}
			if !strings.Contains(err.Error(), envErr.Var) {
				t.Fatalf("error %q does not name %s", err, envErr.Var)
			}
			if m != nil {
				t.Fatalf("manifest %+v returned with error", m)
			}
			return
		}
		if m == nil {
			t.Fatal("nil manifest without error")
		}

		forUs := true
		if p, ok := env[EnvListenPID]; ok {
			n, err := strconv.Atoi(p)
			if err != nil || p[0] < '0' || p[0] > '9' {
				t.Fatalf("LISTEN_PID=%q accepted", p)
			}
			forUs = n == testPID
		}
		if !forUs {
			if len(m.names) != 0 || len(m.control) != 0 || len(m.meta) != 0 || m.handoff {
				t.Fatalf("variables for another process were not ignored: %+v", m)
			}
			return
		}
		if v, ok := env[EnvListenFDs]; ok {
			n, err := strconv.Atoi(v)
			if err != nil || v[0] < '0' || v[0] > '9' {
				t.Fatalf("LISTEN_FDS=%q accepted", v)
			}
			if len(m.names) != n {
				t.Fatalf("LISTEN_FDS=%d but %d names", n, len(m.names))
			}
		} else if len(m.names) != 0 {
			t.Fatalf("%d names without LISTEN_FDS", len(m.names))
		}
		if len(m.names)+len(m.control) > MaxFiles {
			t.Fatalf("%d descriptors accepted", len(m.names)+len(m.control))
		}
		for _, n := range m.names {
			if err := CheckName(n); err != nil {
				t.Fatalf("name %q accepted: %v", n, err)
			}
		}
		seen := map[string]bool{}
		for _, n := range m.control {
			if err := checkControlName(n); err != nil {
				t.Fatalf("control name %q accepted: %v", n, err)
			}
			if seen[n] {
				t.Fatalf("control name %q accepted twice", n)
			}
			seen[n] = true
		}
		for k, v := range m.meta {
			if err := checkMetaKey(k); err != nil {
				t.Fatalf("meta key %q accepted: %v", k, err)
			}
			if err := checkMetaValue(k, v); err != nil {
				t.Fatalf("meta value %q accepted: %v", v, err)
			}
		}
		_, hasHandoff := env[EnvHandoff]
		if m.handoff != hasHandoff {
			t.Fatalf("handoff=%v with HANDOFF set=%v", m.handoff, hasHandoff)
		}

		// What was accepted can be sent on: Env describes it again in
		// a form that parses to the same manifest. Duplicate file
		// names are systemd's to allow and ours to refuse.
		if !m.handoff || hasDup(m.names) || len(m.names) > 64 {
			return
		}
		h := Handover{Meta: m.meta}
		for _, n := range m.names {
			h.Files = append(h.Files, Named{n, null})
		}
		for _, n := range m.control {
			h.Control = append(h.Control, Named{n, null})
		}
		out, _, err := h.Env()
		if err != nil {
			t.Fatalf("accepted manifest %+v cannot be sent on: %v", m, err)
		}
		m2, err := parseEnv(envFromList(t, out).lookup, testPID)
		if err != nil {
			t.Fatalf("Env output %q does not parse: %v", out, err)
		}
		if !equalStrings(m.names, m2.names) || !equalStrings(m.control, m2.control) || !equalMeta(m.meta, m2.meta) {
			t.Fatalf("round trip changed the manifest: %+v -> %q -> %+v", m, out, m2)
		}
	})
}

// FuzzCheckName compares CheckName with a plain restatement of systemd's
// rule, and checks that every accepted name survives LISTEN_FDNAMES.
func FuzzCheckName(f *testing.F) {
	for _, s := range []string{"", "web", "tcp/127.0.0.1%3A8080", "a:b", "a\nb", "\x7f", "caf\u00e9", strings.Repeat("x", 256)} {
		f.Add(s)
	}
	null, err := os.Open(os.DevNull)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { null.Close() })

	f.Fuzz(func(t *testing.T, name string) {
		want := name != "" && len(name) <= 255
		for _, c := range []byte(name) {
			if c < ' ' || c > '~' || c == ':' {
				want = false
			}
		}
		err := CheckName(name)
		if (err == nil) != want {
			t.Fatalf("CheckName(%q) = %v, want ok=%v", name, err, want)
		}
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fdpass: ") {
				t.Fatalf("error %q lacks the package prefix", err)
			}
			return
		}
		h := Handover{Files: []Named{{name, null}}}
		if name != "z" {
			h.Files = append(h.Files, Named{"z", null})
		}
		env, _, err := h.Env()
		if err != nil {
			t.Fatalf("Env with valid name %q: %v", name, err)
		}
		m, err := parseEnv(envFromList(t, env).lookup, testPID)
		if err != nil {
			t.Fatalf("name %q does not survive the round trip: %v", name, err)
		}
		if len(m.names) != len(h.Files) || m.names[0] != name {
			t.Fatalf("name %q came back as %q", name, m.names)
		}
	})
}

func hasDup(s []string) bool {
	seen := make(map[string]bool, len(s))
	for _, x := range s {
		if seen[x] {
			return true
		}
		seen[x] = true
	}
	return false
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func equalMeta(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
