package wire

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/handoff-go/handoff/fdpass"
)

// An Origin says what started this process.
type Origin int

const (
	// Alone: nothing, or systemd socket activation: this is a first
	// generation.
	Alone Origin = iota
	// Handoff: a handoff parent, which passed control files and meta.
	Handoff
	// Tableflip: a parent built with github.com/cloudflare/tableflip.
	Tableflip
)

// ctlPrefix marks the control files in the LISTEN_FDNAMES that Prepare
// writes for fdpass. Every name a handoff parent gives a file has a '/'
// after its kind ("tcp/...", "file/..."), so none can look like one.
const ctlPrefix = "handoff-control/"

// Inherited is what a parent handed this process besides the named files
// that package fdpass adopts: a handoff parent's control files and meta
// pairs, or a tableflip parent's pipes.
type Inherited struct {
	Origin  Origin
	Meta    map[string]string // a handoff parent's; nil otherwise
	control []string
}

// Prepare reads how a handoff or tableflip parent described what it
// handed over and rewrites this process's environment into plain
// socket-activation form, the control files listed after the named ones
// under reserved names, so that [fdpass.Inherit] adopts and checks every
// descriptor in one place — before anything is wrapped in an *os.File,
// which matters: wrapping starts the runtime's poller, whose descriptors
// would take the lowest free numbers, such as one a parent named but did
// not pass. Call it first, then fdpass.Inherit, then [Inherited.Take].
// What it does not understand it leaves to fdpass to refuse.
func Prepare() (*Inherited, error) {
	if _, ok := os.LookupEnv(EnvTableflip); ok {
		// tableflip never unsets its variable, so every program a
		// tableflip process starts inherits it, whatever its fds 3 and
		// 4 are; and a tableflip process started by socket activation
		// may pass its stale LISTEN_FDS on.
		os.Unsetenv(EnvTableflip)
		if !systemdFor(os.Getpid()) && tableflipPipes() {
			return prepareTableflip()
		}
	}
	v, ok := os.LookupEnv(EnvHandoff)
	if !ok {
		return &Inherited{}, nil
	}
	os.Unsetenv(EnvHandoff)
	if !listenPIDIs(os.Getpid()) {
		return &Inherited{}, nil // meant for another process, as fdpass will find too
	}
	control, meta, err := parseHandoff(v)
	if err != nil {
		return nil, fmt.Errorf("malformed %s=%q: %w (the process that started this one passed a broken environment)", EnvHandoff, short(v), err)
	}
	names, err := listedNames()
	if err != nil {
		return nil, err
	}
	for _, c := range control {
		names = append(names, ctlPrefix+c)
	}
	setListed(names)
	return &Inherited{Origin: Handoff, Meta: meta, control: control}, nil
}

// listenPIDIs reports whether LISTEN_PID is unset or names pid.
func listenPIDIs(pid int) bool {
	v, ok := os.LookupEnv(EnvListenPID)
	return !ok || v == strconv.Itoa(pid)
}

// systemdFor reports whether systemd's variables are meant for the
// process pid.
func systemdFor(pid int) bool {
	_, ok := os.LookupEnv(EnvListenFDs)
	return ok && listenPIDIs(pid)
}

// listedNames returns the names of the files LISTEN_FDS and
// LISTEN_FDNAMES describe.
func listedNames() ([]string, error) {
	n := 0
	if v, ok := os.LookupEnv(EnvListenFDs); ok {
		c, err := parseCount(v)
		if err != nil || c > MaxFiles {
			return nil, fmt.Errorf("malformed %s=%q: not a count up to %d (the process that started this one passed a broken environment)", EnvListenFDs, short(v), MaxFiles)
		}
		n = c
	}
	v, ok := os.LookupEnv(EnvListenFDNames)
	if !ok {
		names := make([]string, n)
		for i := range names {
			names[i] = "unknown" // systemd's rule
		}
		return names, nil
	}
	var names []string
	if v != "" || n > 0 {
		names = strings.Split(v, ":")
	}
	if len(names) != n {
		return nil, fmt.Errorf("malformed %s=%q: %d names for %s=%d (the process that started this one passed a broken environment)", EnvListenFDNames, short(v), len(names), EnvListenFDs, n)
	}
	return names, nil
}

// setListed describes names as this process's inherited files, from fd 3.
func setListed(names []string) {
	os.Setenv(EnvListenFDs, strconv.Itoa(len(names)))
	os.Setenv(EnvListenFDNames, strings.Join(names, ":"))
	os.Unsetenv(EnvListenPID)
}

// prepareTableflip reads a tableflip parent's names and describes its
// pipes (fds 3 and 4) and files (5..) for fdpass.
func prepareTableflip() (*Inherited, error) {
	names, err := readTableflipNames(fdReader(3 + 1))
	if err != nil {
		return nil, err
	}
	ctl := []string{CtlTableflipReady, CtlTableflipParent}
	setListed(append([]string{ctlPrefix + ctl[0], ctlPrefix + ctl[1]}, names...))
	return &Inherited{Origin: Tableflip, control: ctl}, nil
}

// Take takes the control files from files, which fdpass.Inherit adopted
// after Prepare, by name. The caller closes those it does not use. On
// failure nothing stays open.
func (in *Inherited) Take(files *fdpass.Inherited) (map[string]*os.File, error) {
	ctl := make(map[string]*os.File, len(in.control))
	for _, name := range in.control {
		f, err := files.File(ctlPrefix + name)
		if err != nil {
			for _, f := range ctl {
				f.Close()
			}
			return nil, fmt.Errorf("control file %q: %w", name, err)
		}
		ctl[name] = f
	}
	return ctl, nil
}
