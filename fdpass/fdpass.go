package fdpass

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
)

// Environment variables read and written by this package.
const (
	EnvListenFDs     = "LISTEN_FDS"
	EnvListenFDNames = "LISTEN_FDNAMES"
	EnvListenPID     = "LISTEN_PID"
	EnvHandoff       = "HANDOFF"
)

// FirstFD is the descriptor number of the first handed-over file.
const FirstFD = 3

// MaxFiles bounds the number of descriptors a manifest may describe.
// Larger values in LISTEN_FDS are rejected as malformed.
const MaxFiles = 1 << 16

// maxNameLen is systemd's limit on one LISTEN_FDNAMES entry.
const maxNameLen = 255

// handoffVersion is the first field of the HANDOFF variable.
const handoffVersion = "v1"

var (
	// ErrNotSupported is returned on platforms without unix descriptor passing.
	ErrNotSupported = errors.New("fdpass: not supported on this platform")
	// ErrNotFound is returned when no inherited file has the asked-for name.
	ErrNotFound = errors.New("fdpass: no inherited file with that name")
)

// EnvError reports a malformed environment variable.
type EnvError struct {
	Var    string // the variable, e.g. "LISTEN_FDS"
	Value  string // its value, possibly shortened
	Reason string // what is wrong with it
}

// Error names the variable, its value and what is wrong with it.
func (e *EnvError) Error() string {
	return fmt.Sprintf("fdpass: malformed %s=%q: %s (the process that started this one passed a broken environment)",
		e.Var, e.Value, e.Reason)
}

// FDError reports an inherited descriptor that is missing or not of the
// expected kind.
type FDError struct {
	FD   int    // the descriptor number
	Name string // its name in the manifest
	Want string // what was expected, e.g. "listening tcp socket"
	Err  error  // what was found instead
}

// Error names the descriptor, its manifest name and what it was instead.
func (e *FDError) Error() string {
	return fmt.Sprintf("fdpass: inherited fd %d (%q) is not a %s: %v", e.FD, e.Name, e.Want, e.Err)
}

// Unwrap returns the underlying cause.
func (e *FDError) Unwrap() error { return e.Err }

// Named is a file with the name it is handed over under.
type Named struct {
	Name string   // unique, valid for LISTEN_FDNAMES (see CheckName)
	File *os.File // the file to hand over; see Dup
}

// Handover describes the files a parent passes to a child.
type Handover struct {
	// Files are placed at descriptors 3.. in order and listed in
	// LISTEN_FDS/LISTEN_FDNAMES. Names must be unique and valid for
	// LISTEN_FDNAMES (see [CheckName]).
	Files []Named
	// Control files follow Files and are named in the HANDOFF variable
	// only, so systemd-style programs do not mistake them for sockets.
	Control []Named
	// Meta is carried as key=value pairs in the HANDOFF variable. Keys are
	// lower-case letters, digits, '-' and '_'; values may not contain ';'
	// or control characters.
	Meta map[string]string
}

// CheckName reports whether name can be used in LISTEN_FDNAMES: non-empty,
// at most 255 bytes, printable ASCII without ':'.
func CheckName(name string) error {
	if name == "" {
		return errors.New("fdpass: empty file name")
	}
	if len(name) > maxNameLen {
		return fmt.Errorf("fdpass: file name %.40q... is %d bytes, more than systemd's limit of %d", name, len(name), maxNameLen)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x20 || c >= 0x7f || c == ':' {
			return fmt.Errorf("fdpass: file name %q contains %q at byte %d: names are printable ASCII without ':'", name, c, i)
		}
	}
	return nil
}

func checkControlName(name string) error {
	if err := CheckName(name); err != nil {
		return err
	}
	if strings.ContainsAny(name, ",;=") {
		return fmt.Errorf("fdpass: control name %q may not contain ',', ';' or '='", name)
	}
	return nil
}

func checkMetaKey(k string) error {
	if k == "" || k == "control" {
		return fmt.Errorf("fdpass: meta key %q is reserved or empty", k)
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("fdpass: meta key %q: only a-z, 0-9, '-' and '_' are allowed", k)
		}
	}
	return nil
}

func checkMetaValue(k, v string) error {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c == 0x7f || c == ';' {
			return fmt.Errorf("fdpass: meta value for %q contains %q: ';' and control characters are not allowed", k, c)
		}
	}
	return nil
}

// Env returns the environment entries ("KEY=value") describing h, and the
// files in descriptor order (the order of ExtraFiles).
func (h *Handover) Env() (env []string, files []*os.File, err error) {
	for _, f := range h.Files {
		if f.File == nil {
			return nil, nil, fmt.Errorf("fdpass: file %q is nil", f.Name)
		}
		files = append(files, f.File)
	}
	for _, f := range h.Control {
		if f.File == nil {
			return nil, nil, fmt.Errorf("fdpass: control file %q is nil", f.Name)
		}
		files = append(files, f.File)
	}
	env, err = h.Environ()
	if err != nil {
		return nil, nil, err
	}
	return env, files, nil
}

// Environ returns the environment entries ("KEY=value") describing h. It
// looks only at names and Meta, not at the File fields, for a caller that
// starts the process with raw descriptors from [DupFD] (through
// [syscall.StartProcess]) in the same order.
func (h *Handover) Environ() ([]string, error) {
	seen := make(map[string]bool, len(h.Files))
	names := make([]string, 0, len(h.Files))
	for _, f := range h.Files {
		if err := CheckName(f.Name); err != nil {
			return nil, err
		}
		if seen[f.Name] {
			return nil, fmt.Errorf("fdpass: two files named %q: names must be unique", f.Name)
		}
		seen[f.Name] = true
		names = append(names, f.Name)
	}
	fields := []string{handoffVersion}
	ctl := make([]string, 0, len(h.Control))
	seenCtl := make(map[string]bool, len(h.Control))
	for _, f := range h.Control {
		if err := checkControlName(f.Name); err != nil {
			return nil, err
		}
		// The child refuses a HANDOFF variable naming a control file
		// twice, so refuse to write one.
		if seenCtl[f.Name] {
			return nil, fmt.Errorf("fdpass: two control files named %q: names must be unique", f.Name)
		}
		seenCtl[f.Name] = true
		ctl = append(ctl, f.Name)
	}
	fields = append(fields, "control="+strings.Join(ctl, ","))
	for _, k := range slices.Sorted(maps.Keys(h.Meta)) {
		if err := checkMetaKey(k); err != nil {
			return nil, err
		}
		if err := checkMetaValue(k, h.Meta[k]); err != nil {
			return nil, err
		}
		fields = append(fields, k+"="+h.Meta[k])
	}
	return []string{
		EnvListenFDs + "=" + strconv.Itoa(len(h.Files)),
		EnvListenFDNames + "=" + strings.Join(names, ":"),
		EnvHandoff + "=" + strings.Join(fields, ";"),
	}, nil
}

// Apply sets cmd.ExtraFiles to the handed-over files and appends their
// description to cmd.Env, after removing any inherited LISTEN_* and HANDOFF
// variables from it. A nil cmd.Env starts from [os.Environ]. The files
// should come from [Dup] so that starting the command leaves the parent's
// sockets in non-blocking mode.
func (h *Handover) Apply(cmd *exec.Cmd) error {
	env, files, err := h.Env()
	if err != nil {
		return err
	}
	base := cmd.Env
	if base == nil {
		base = os.Environ()
	}
	cmd.Env = append(StripEnv(base), env...)
	cmd.ExtraFiles = files
	return nil
}

// StripEnv returns env without the variables this package owns.
func StripEnv(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case EnvListenFDs, EnvListenFDNames, EnvListenPID, EnvHandoff:
			continue
		}
		out = append(out, kv)
	}
	return out
}

// manifest is the parsed description of inherited descriptors.
type manifest struct {
	names   []string // fds FirstFD..FirstFD+len(names)-1
	control []string // follow names
	meta    map[string]string
	handoff bool // a HANDOFF variable was present

	controlFirst bool // control fds come first, then names (tableflip)
	tableflip    bool // a tableflip parent passed the files
}

// fds returns each described descriptor with its name, and whether it is a
// control file, in descriptor order.
func (m *manifest) fds() (names []string, control []bool) {
	if m.controlFirst {
		names = append(slices.Clip(m.control), m.names...)
		for i := range names {
			control = append(control, i < len(m.control))
		}
		return names, control
	}
	names = append(slices.Clip(m.names), m.control...)
	for i := range names {
		control = append(control, i >= len(m.names))
	}
	return names, control
}

// lookupFunc reads one environment variable.
type lookupFunc func(string) (string, bool)

// parseEnv parses the variables read through lookup for the process pid. A
// LISTEN_PID naming another process means the variables were not meant for
// this process: the result is empty, not an error.
func parseEnv(lookup lookupFunc, pid int) (*manifest, error) {
	m := &manifest{}
	if v, ok := lookup(EnvListenPID); ok {
		p, err := parseUint(v)
		if err != nil || p == 0 {
			return nil, &EnvError{Var: EnvListenPID, Value: short(v), Reason: "not a positive decimal PID"}
		}
		if p != pid {
			return m, nil
		}
	}
	n := 0
	if v, ok := lookup(EnvListenFDs); ok {
		c, err := parseUint(v)
		if err != nil {
			return nil, &EnvError{Var: EnvListenFDs, Value: short(v), Reason: "not a decimal count"}
		}
		if c > MaxFiles {
			return nil, &EnvError{Var: EnvListenFDs, Value: short(v), Reason: fmt.Sprintf("more than %d descriptors", MaxFiles)}
		}
		n = c
	}
	if v, ok := lookup(EnvListenFDNames); ok {
		var names []string
		if v != "" || n > 0 {
			names = strings.Split(v, ":")
		}
		if len(names) != n {
			return nil, &EnvError{Var: EnvListenFDNames, Value: short(v),
				Reason: fmt.Sprintf("%d names for %s=%d", len(names), EnvListenFDs, n)}
		}
		for _, name := range names {
			if err := CheckName(name); err != nil {
				return nil, &EnvError{Var: EnvListenFDNames, Value: short(v), Reason: err.Error()}
			}
		}
		m.names = names
	} else {
		// systemd's rule: without names every descriptor is "unknown".
		m.names = make([]string, n)
		for i := range m.names {
			m.names[i] = "unknown"
		}
	}
	if v, ok := lookup(EnvHandoff); ok {
		if err := m.parseHandoff(v); err != nil {
			return nil, &EnvError{Var: EnvHandoff, Value: short(v), Reason: err.Error()}
		}
	}
	if len(m.names)+len(m.control) > MaxFiles {
		return nil, &EnvError{Var: EnvHandoff, Value: "", Reason: "too many descriptors in all"}
	}
	return m, nil
}

func (m *manifest) parseHandoff(v string) error {
	fields := strings.Split(v, ";")
	if fields[0] != handoffVersion {
		return fmt.Errorf("version %q, want %q: parent and child run incompatible handoff versions", fields[0], handoffVersion)
	}
	m.handoff = true
	m.meta = make(map[string]string)
	sawControl := false
	for _, f := range fields[1:] {
		k, val, ok := strings.Cut(f, "=")
		if !ok {
			return fmt.Errorf("field %q is not key=value", short(f))
		}
		if k == "control" {
			if sawControl {
				return errors.New("control listed twice")
			}
			sawControl = true
			if val == "" {
				continue
			}
			seen := make(map[string]bool)
			for _, name := range strings.Split(val, ",") {
				if err := checkControlName(name); err != nil {
					return err
				}
				if seen[name] {
					return fmt.Errorf("control name %q listed twice", name)
				}
				seen[name] = true
				m.control = append(m.control, name)
			}
			continue
		}
		if err := checkMetaKey(k); err != nil {
			return err
		}
		if err := checkMetaValue(k, val); err != nil {
			return err
		}
		if _, dup := m.meta[k]; dup {
			return fmt.Errorf("key %q listed twice", k)
		}
		m.meta[k] = val
	}
	return nil
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

func short(s string) string {
	const max = 80
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}
