package fdpass

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
)

// The variables of systemd's socket-activation protocol.
const (
	envListenFDs     = "LISTEN_FDS"
	envListenFDNames = "LISTEN_FDNAMES"
	envListenPID     = "LISTEN_PID"
)

// maxFiles bounds the descriptors LISTEN_FDS may describe.
const maxFiles = 1 << 16

var (
	// ErrNotSupported is returned on platforms without unix descriptor
	// passing.
	ErrNotSupported = errors.New("fdpass: not supported on this platform")
	// ErrNotFound is returned when no inherited file has the name, or no
	// socket the address, asked for. A program started by hand has none:
	// create the socket instead.
	ErrNotFound = errors.New("fdpass: no such inherited file")
	// ErrMalformed is wrapped by the error Inherit returns when the
	// variables describing inherited files are malformed, or name a
	// descriptor that is not open. The message says which; the fault lies
	// with the process that started this one.
	ErrMalformed = errors.New("fdpass: malformed socket-activation environment")
)

// Named is a socket or file handed to a child under a name (see [Start]).
type Named struct {
	// Name goes into LISTEN_FDNAMES: printable ASCII without ':', at most
	// 255 bytes. systemd allows the same name twice; so does this package.
	Name string
	// Conn is what is handed over: a listener, a packet conn, an
	// [*os.File] — anything that has the SyscallConn method.
	Conn syscall.Conn
}

// checkName reports whether name can be used in LISTEN_FDNAMES.
func checkName(name string) error {
	if name == "" {
		return errors.New("fdpass: empty name")
	}
	if len(name) > 255 {
		return fmt.Errorf("fdpass: name %.40q... is %d bytes, more than systemd's limit of 255", name, len(name))
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x20 || c >= 0x7f || c == ':' {
			return fmt.Errorf("fdpass: name %q contains %q at byte %d: names are printable ASCII without ':'", name, c, i)
		}
	}
	return nil
}

// lookupFunc reads one environment variable.
type lookupFunc func(string) (string, bool)

// parseEnv returns the names of the files the variables read through
// lookup describe for the process pid, in descriptor order from fd 3. A
// LISTEN_PID naming another process means the variables were not meant
// for this one: the result is empty, not an error.
func parseEnv(lookup lookupFunc, pid int) ([]string, error) {
	malformed := func(name, v, why string) error {
		if len(v) > 80 {
			v = v[:80] + "..."
		}
		return fmt.Errorf("%w: %s=%q: %s (the process that started this one passed it)", ErrMalformed, name, v, why)
	}
	if v, ok := lookup(envListenPID); ok {
		p, err := parseUint(v)
		if err != nil || p == 0 {
			return nil, malformed(envListenPID, v, "not a positive decimal PID")
		}
		if p != pid {
			return nil, nil
		}
	}
	n := 0
	if v, ok := lookup(envListenFDs); ok {
		c, err := parseUint(v)
		if err != nil {
			return nil, malformed(envListenFDs, v, "not a decimal count")
		}
		if c > maxFiles {
			return nil, malformed(envListenFDs, v, fmt.Sprintf("more than %d descriptors", maxFiles))
		}
		n = c
	}
	v, ok := lookup(envListenFDNames)
	if !ok {
		// systemd's rule: without names every descriptor is "unknown".
		names := make([]string, n)
		for i := range names {
			names[i] = "unknown"
		}
		return names, nil
	}
	var names []string
	if v != "" || n > 0 {
		names = strings.Split(v, ":")
	}
	if len(names) != n {
		return nil, malformed(envListenFDNames, v, fmt.Sprintf("%d names for %s=%d", len(names), envListenFDs, n))
	}
	for _, name := range names {
		if err := checkName(name); err != nil {
			return nil, malformed(envListenFDNames, v, strings.TrimPrefix(err.Error(), "fdpass: "))
		}
	}
	return names, nil
}

// stripEnv returns env without the variables of socket activation.
func stripEnv(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case envListenFDs, envListenFDNames, envListenPID:
			continue
		}
		out = append(out, kv)
	}
	return out
}

// parseUint accepts only plain decimal digits (no sign, no spaces).
func parseUint(s string) (int, error) {
	if s == "" || len(s) > 9 {
		return 0, errors.New("bad number")
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, errors.New("bad number")
		}
		n = n*10 + int(c-'0')
	}
	return n, nil
}
