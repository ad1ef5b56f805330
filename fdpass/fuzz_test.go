package fdpass

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

// FuzzParseEnv feeds arbitrary values of the three variables to parseEnv.
// Bit i of unset (LISTEN_FDS, LISTEN_FDNAMES, LISTEN_PID) leaves that
// variable unset, so "unset" and "set but empty" are both explored.
func FuzzParseEnv(f *testing.F) {
	seeds := []struct {
		fds, names, pid string
		unset           uint8
	}{
		{"", "", "", 0b111},
		{"2", "tcp/127.0.0.1%3A8080:metrics", "", 0b100},
		{"2", "", "", 0b110},
		{"1", "web", "4242", 0},
		{"1", "web", "4243", 0},
		{"0", "", "", 0b100},
		{"3", "a::b", "", 0b100},
		{"+2", "a:b", "0", 0},
		{"65536", "", "", 0b110},
		{"1", "a\x01", "", 0b100},
	}
	for _, s := range seeds {
		f.Add(s.fds, s.names, s.pid, s.unset)
	}
	f.Fuzz(func(t *testing.T, fds, names, pid string, unset uint8) {
		env := fakeEnv{}
		for i, kv := range [][2]string{{envListenFDs, fds}, {envListenFDNames, names}, {envListenPID, pid}} {
			if unset&(1<<i) == 0 {
				env[kv[0]] = kv[1]
			}
		}
		got, err := parseEnv(env.lookup, testPID)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			if got != nil {
				t.Fatalf("names %q returned with error", got)
			}
			return
		}
		forUs := true
		if p, ok := env[envListenPID]; ok {
			n, err := strconv.Atoi(p)
			if err != nil || p[0] < '0' || p[0] > '9' {
				t.Fatalf("LISTEN_PID=%q accepted", p)
			}
			forUs = n == testPID
		}
		if !forUs {
			if len(got) != 0 {
				t.Fatalf("variables for another process were not ignored: %q", got)
			}
			return
		}
		if v, ok := env[envListenFDs]; ok {
			n, err := strconv.Atoi(v)
			if err != nil || v[0] < '0' || v[0] > '9' {
				t.Fatalf("LISTEN_FDS=%q accepted", v)
			}
			if len(got) != n {
				t.Fatalf("LISTEN_FDS=%d but %d names", n, len(got))
			}
		} else if len(got) != 0 {
			t.Fatalf("%d names without LISTEN_FDS", len(got))
		}
		if len(got) > maxFiles {
			t.Fatalf("%d descriptors accepted", len(got))
		}
		for _, n := range got {
			if err := checkName(n); err != nil {
				t.Fatalf("name %q accepted: %v", n, err)
			}
		}
	})
}

// FuzzCheckName compares checkName with a plain restatement of systemd's
// rule, and checks that every accepted name survives LISTEN_FDNAMES.
func FuzzCheckName(f *testing.F) {
	for _, s := range []string{"", "web", "tcp/127.0.0.1%3A8080", "a:b", "a\nb", "\x7f", "caf\u00e9", strings.Repeat("x", 256)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		want := name != "" && len(name) <= 255
		for _, c := range []byte(name) {
			if c < ' ' || c > '~' || c == ':' {
				want = false
			}
		}
		err := checkName(name)
		if (err == nil) != want {
			t.Fatalf("checkName(%q) = %v, want ok=%v", name, err, want)
		}
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fdpass: ") {
				t.Fatalf("error %q lacks the package prefix", err)
			}
			return
		}
		env := fakeEnv{envListenFDs: "2", envListenFDNames: name + ":z"}
		got, err := parseEnv(env.lookup, testPID)
		if err != nil {
			t.Fatalf("name %q does not survive LISTEN_FDNAMES: %v", name, err)
		}
		if len(got) != 2 || got[0] != name {
			t.Fatalf("name %q came back as %q", name, got)
		}
	})
}
