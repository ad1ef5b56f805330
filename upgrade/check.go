package upgrade

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/handoff-go/handoff/internal/wire"
)

// SHA256File is a ready-made Options.Check: the program must match the
// SHA-256 sum in a file beside it, named as it is with ".sha256" added
// (beside the file a symlink leads to, so that current -> releases/N finds
// releases/N/app.sha256), in the format sha256sum writes: 64 hex digits,
// then anything. A deploy writes the sum when it builds, copies both
// files, and renames the program into place last:
//
//	sha256sum app > app.sha256
//
// A missing sum file fails the check too: the upgrade is refused rather
// than run a build nobody vouched for.
func SHA256File(f *os.File) error {
	path, err := filepath.EvalSymlinks(f.Name())
	if err != nil {
		path = f.Name()
	}
	sumPath := path + ".sha256"
	b, err := os.ReadFile(sumPath)
	if err != nil {
		return fmt.Errorf("read its checksum: %w (write it with `sha256sum %s > %s`)", err, filepath.Base(path), filepath.Base(sumPath))
	}
	want, _, _ := bytes.Cut(bytes.TrimSpace(b), []byte(" "))
	if len(want) != 2*sha256.Size {
		return fmt.Errorf("%s holds no SHA-256 sum (want 64 hex digits first, as sha256sum writes)", sumPath)
	}
	if _, err := hex.DecodeString(string(want)); err != nil {
		return fmt.Errorf("%s holds no SHA-256 sum (want 64 hex digits first, as sha256sum writes)", sumPath)
	}
	h := sha256.New()
	// ReadAt, through a section: the file's offset stays where it is.
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, 1<<62)); err != nil {
		return fmt.Errorf("read the program: %w", err)
	}
	got := hex.EncodeToString(h.Sum(nil))
	if !bytes.EqualFold(want, []byte(got)) {
		return fmt.Errorf("its SHA-256 is %s, %s says %s: the file is incomplete or not the build that was checked; install it again (copy it beside, then rename it into place)", got, sumPath, want)
	}
	return nil
}

// openProgram opens the program the next generation runs and, with
// Options.Check set, checks that very file. The caller starts it from the
// descriptor where the platform can (see startFrom), so that a file
// replaced at the path after the check never runs.
func (u *Upgrader) openProgram() (*os.File, error) {
	f, err := openRead(u.next.path)
	if err != nil {
		return nil, &ChildError{Stage: StageStart, Err: fmt.Errorf("open the program: %w (is the new build installed there? Options.Path names it)", err)}
	}
	if u.opts.Check == nil {
		return f, nil
	}
	if err := u.opts.Check(f); err != nil {
		f.Close()
		return nil, &ChildError{Stage: StageCheck, Err: fmt.Errorf("check %s: %w", u.next.path, err)}
	}
	return f, nil
}

// start launches the next generation with the files handed over, as a
// handoff program or (Options.ForeignChild) a systemd-style one: the
// program checked, what it carries over gathered, then the platform's
// start.
func (u *Upgrader) start(files []*handed, elders []*elder) (*child, error) {
	prog, err := u.openProgram()
	if err != nil {
		return nil, err
	}
	defer prog.Close()
	if u.opts.ForeignChild {
		return u.startForeign(files) // by path: its starter re-executes itself first
	}
	sections, err := u.carry()
	if err != nil {
		return nil, &ChildError{Stage: StageStart, Err: err}
	}
	env, err := u.nextEnv()
	if err != nil {
		return nil, &ChildError{Stage: StageStart, Err: err}
	}
	l := launch{prog: prog, path: u.next.path, args: u.next.args, env: env, gen: u.gen + 1,
		probation: u.opts.Probation, sections: sections}
	if w := u.opts.RollbackWindow; w > 0 {
		l.meta = map[string]string{wire.MetaWindow: strconv.FormatInt(w.Milliseconds(), 10)}
	}
	return u.startHandoff(l, files, elders)
}

// launch is what a handoff program is started as.
type launch struct {
	prog      *os.File // the program, opened (and checked)
	path      string   // its path, to start it by where it cannot be from prog
	args      []string
	env       []string
	gen       int // its generation
	probation time.Duration
	sections  map[string][]byte // what it reads at start (wire.WriteCarry)
	meta      map[string]string // more of the hand-over's meta
}
