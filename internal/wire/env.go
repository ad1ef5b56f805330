package wire

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// The variables of systemd's socket-activation format, which describe the
// named files, and handoff's own, which describes the rest.
const (
	EnvListenFDs     = "LISTEN_FDS"
	EnvListenFDNames = "LISTEN_FDNAMES"
	EnvListenPID     = "LISTEN_PID"
	EnvHandoff       = "HANDOFF"
)

// handoffVersion is the first field of the HANDOFF variable. It has been
// "v1" since the first release and stays so: a build that sees another
// value refuses the hand-over, so the protocol grows by meta keys instead
// (see MetaProto).
const handoffVersion = "v1"

// MaxFiles bounds the descriptors a hand-over may describe.
const MaxFiles = 1 << 16

// Names of the control files a handoff parent passes after the named ones.
const (
	CtlReady  = "ready"  // the readiness channel
	CtlStderr = "stderr" // the parent's own stderr, which the child makes its fd 2 at go
	// CtlStderrPipe is the read end of the child's stderr pipe. The child
	// holds it only so that the pipe always has a reader: if the parent
	// dies before the child is ready, the child's writes to stderr cannot
	// raise SIGPIPE before it switches to CtlStderr.
	CtlStderrPipe = "stderr-pipe"
	// CtlElderPrefix + PID names a copy of the child's end of an older,
	// still draining generation's readiness channel: it reaches EOF when
	// that generation exits, so each generation can count those alive.
	CtlElderPrefix = "elder-"
	// CtlExe is the program file itself, which the parent opened, checked
	// and started through /proc/self/fd: the child has nothing to do with
	// it but close it. An older child closes it as a control file it does
	// not know.
	CtlExe = "exe"
)

// Meta keys in the HANDOFF variable.
const (
	MetaGen    = "gen"    // the child's generation number
	MetaPPID   = "ppid"   // the parent's PID
	MetaGo     = "go"     // "1": the parent answers ready with go and waits for live
	MetaNotify = "notify" // "1": the parent reports to systemd and says main after live
	// MetaProto is the highest protocol version the parent speaks. Builds
	// before it was introduced send none, which means 1. A side sends a
	// message or file that a version introduced only when the other side
	// has announced that version, so builds of different versions hand
	// over with what both know.
	MetaProto = "proto"
	// MetaPath is the path the parent starts its next generations with,
	// escaped (EscapeMeta): the child starts the same at its own upgrade,
	// unless it was told otherwise, so that a start script or a release
	// symlink keeps working from one generation to the next. Builds
	// before version 2 neither send nor read it.
	MetaPath = "path"
	// MetaName is the name the kernel would have given the child had it
	// been started by its path (the base name), sent when it was started
	// from its descriptor, which names it after the descriptor's number
	// ("7" in ps, top and pgrep): the child takes this name.
	MetaName = "name"
)

// Version is the protocol version this build speaks. 1: files, control
// files and the ready/go/live/main exchange. 2: the parent announces it
// with MetaProto, and passes its start path (MetaPath). 3: the parent
// offers the connection channel (CtlConns), on which it passes live
// connections to a child that asks for them, and the carry file
// (CtlCarry). 4: the parent says its rollback window (MetaWindow), and
// parent and child exchange the messages after the hand-over (after.go);
// the parent may pass the program file (CtlExe), which older children
// close unread. 5 (VersionStream): the parent reads the channel as one
// stream of lines, so a child may say ready and live in one write
// (ReadyLive); a parent before it reads a message at a time and would
// lose the second.
const Version = 5

// VersionStream is the first version whose parent reads the readiness
// channel as a stream.
const VersionStream = 5

// Key names a socket across generations: the network and the address
// asked for (not the address bound), so that a listener on port 0 keeps
// its port; the next generation asks for ":0" again and receives the same
// socket. ':' and '%' are escaped because LISTEN_FDNAMES separates names
// with ':'.
func Key(network, addr string) string { return network + "/" + keyEscaper.Replace(addr) }

// FileKey names a file handed over by name.
func FileKey(name string) string { return "file/" + name }

// ControlKey names the control socket at path.
func ControlKey(path string) string { return "control/" + keyEscaper.Replace(path) }

// keyEscaper is built once: building a Replacer costs more than using it,
// which adds up in a child that takes a thousand listeners.
var keyEscaper = strings.NewReplacer("%", "%25", ":", "%3A")

// CheckName reports whether name can be used in LISTEN_FDNAMES: non-empty,
// at most 255 bytes, printable ASCII without ':'.
func CheckName(name string) error {
	if name == "" {
		return errors.New("empty name")
	}
	if len(name) > 255 {
		return fmt.Errorf("name %.40q... is %d bytes, more than systemd's limit of 255", name, len(name))
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x20 || c >= 0x7f || c == ':' {
			return fmt.Errorf("name %q contains %q at byte %d: names are printable ASCII without ':'", name, c, i)
		}
	}
	return nil
}

// Handover describes what a parent passes to a handoff child: the named
// files at descriptors 3.., then the control files, and meta pairs.
type Handover struct {
	Files   []string // names, unique
	Control []string // names, unique
	Meta    map[string]string
}

// Env returns the variables describing h.
func (h *Handover) Env() ([]string, error) {
	seen := make(map[string]bool, len(h.Files))
	for _, n := range h.Files {
		if err := CheckName(n); err != nil {
			return nil, err
		}
		if seen[n] {
			return nil, fmt.Errorf("two files named %q", n)
		}
		seen[n] = true
	}
	clear(seen)
	for _, n := range h.Control {
		if err := checkControlName(n); err != nil {
			return nil, err
		}
		if seen[n] {
			return nil, fmt.Errorf("two control files named %q", n)
		}
		seen[n] = true
	}
	fields := []string{handoffVersion, "control=" + strings.Join(h.Control, ",")}
	for _, k := range slices.Sorted(maps.Keys(h.Meta)) {
		if err := checkMeta(k, h.Meta[k]); err != nil {
			return nil, err
		}
		fields = append(fields, k+"="+h.Meta[k])
	}
	return []string{
		EnvListenFDs + "=" + strconv.Itoa(len(h.Files)),
		EnvListenFDNames + "=" + strings.Join(h.Files, ":"),
		EnvHandoff + "=" + strings.Join(fields, ";"),
	}, nil
}

// StripEnv returns env without the variables that describe inherited
// files.
func StripEnv(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case EnvListenFDs, EnvListenFDNames, EnvListenPID, EnvHandoff, EnvTableflip:
			continue
		}
		out = append(out, kv)
	}
	return out
}

func checkControlName(name string) error {
	if err := CheckName(name); err != nil {
		return err
	}
	if strings.ContainsAny(name, ",;=") {
		return fmt.Errorf("control name %q may not contain ',', ';' or '='", name)
	}
	return nil
}

func checkMeta(k, v string) error {
	if k == "" || k == "control" {
		return fmt.Errorf("meta key %q is reserved or empty", k)
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("meta key %q: only a-z, 0-9, '-' and '_' are allowed", k)
		}
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c == 0x7f || c == ';' {
			return fmt.Errorf("meta value for %q contains %q: ';' and control characters are not allowed", k, c)
		}
	}
	return nil
}

// parseHandoff parses the value of the HANDOFF variable.
func parseHandoff(v string) (control []string, meta map[string]string, err error) {
	fields := strings.Split(v, ";")
	if fields[0] != handoffVersion {
		return nil, nil, fmt.Errorf("version %q, want %q", short(fields[0]), handoffVersion)
	}
	meta = make(map[string]string)
	sawControl := false
	for _, f := range fields[1:] {
		k, val, ok := strings.Cut(f, "=")
		if !ok {
			return nil, nil, fmt.Errorf("field %q is not key=value", short(f))
		}
		if k == "control" {
			if sawControl {
				return nil, nil, errors.New("control listed twice")
			}
			sawControl = true
			if val == "" {
				continue
			}
			seen := make(map[string]bool)
			for _, name := range strings.Split(val, ",") {
				if err := checkControlName(name); err != nil {
					return nil, nil, err
				}
				if seen[name] {
					return nil, nil, fmt.Errorf("control name %q listed twice", name)
				}
				seen[name] = true
				control = append(control, name)
			}
			continue
		}
		if err := checkMeta(k, val); err != nil {
			return nil, nil, err
		}
		if _, dup := meta[k]; dup {
			return nil, nil, fmt.Errorf("key %q listed twice", k)
		}
		meta[k] = val
	}
	return control, meta, nil
}

// EscapeMeta makes s fit in a meta value: '%', ';' and control
// characters become %XX.
func EscapeMeta(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '%' || c == ';' || c < 0x20 || c == 0x7f:
			fmt.Fprintf(&b, "%%%02X", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// UnescapeMeta undoes EscapeMeta.
func UnescapeMeta(s string) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", fmt.Errorf("malformed escape at the end of %q", short(s))
		}
		v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			return "", fmt.Errorf("malformed escape %q in %q", s[i:i+3], short(s))
		}
		b.WriteByte(byte(v))
		i += 2
	}
	return b.String(), nil
}

// parseCount accepts only plain decimal digits (no sign, no spaces), as
// a count of descriptors.
func parseCount(s string) (int, error) {
	if s == "" || len(s) > 9 {
		return 0, errors.New("not a decimal count")
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, errors.New("not a decimal count")
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
