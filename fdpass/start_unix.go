//go:build unix

package fdpass

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// shimPath runs shimScript. Go cannot set a variable between fork and
// exec, and a systemd-style program checks LISTEN_PID against its own PID:
// the shell learns its PID ($$), exports it, and execs the program, which
// keeps that PID. Arguments pass through "$0" "$@" unchanged, whatever they
// hold, and a POSIX shell leaves inherited descriptors above 2 alone across
// exec.
const (
	shimPath   = "/bin/sh"
	shimScript = `LISTEN_PID=$$; export LISTEN_PID; exec "$0" "$@"`
)

// Start starts cmd with files as its descriptors 3, 4, ..., in order,
// described as systemd's socket activation describes them: LISTEN_FDS,
// LISTEN_FDNAMES (the names, joined by ':') and LISTEN_PID, the child's
// own PID. So any socket-activated program finds them: sd_listen_fds(3),
// go-systemd's activation package, or [Inherit].
//
// Go cannot set a variable between fork and exec, so the program is
// started through /bin/sh, which exports LISTEN_PID=$$ and execs the
// program in its own place, keeping the PID: cmd.Process is the program
// itself, and signals and Wait reach it. The shell passes the arguments on
// unchanged, but the program's argv[0] is cmd.Path; the shell also sets
// PWD, and some shells (dash) drop variables whose names are not shell
// identifiers. The shim costs under a millisecond.
//
// Each file is duplicated for the child, so the caller's own sockets are
// untouched and stay non-blocking (os/exec given a listener's File would
// switch the shared socket into blocking mode under the caller); the
// duplicates are closed once the child has started. Any cmd.ExtraFiles
// follow the named files. In cmd.Env (os.Environ() if nil), variables
// describing inherited files are replaced. cmd is otherwise used as given
// and left as it was, but started: the caller waits for it with cmd.Wait.
func Start(cmd *exec.Cmd, files ...Named) error {
	if cmd.Err != nil {
		return cmd.Err
	}
	if cmd.Process != nil {
		return fmt.Errorf("fdpass: Start: %s was already started", cmd.Path)
	}
	path := cmd.Path
	if !strings.Contains(path, "/") {
		path = "./" + path // the shell would search PATH; exec would not
	}
	check := path
	if !filepath.IsAbs(check) && cmd.Dir != "" {
		check = filepath.Join(cmd.Dir, check)
	}
	if _, err := exec.LookPath(check); err != nil {
		return fmt.Errorf("fdpass: Start: %w", err)
	}
	names := make([]string, len(files))
	dups := make([]*os.File, 0, len(files))
	defer func() {
		for _, f := range dups {
			f.Close()
		}
	}()
	for i, f := range files {
		if err := checkName(f.Name); err != nil {
			return err
		}
		if f.Conn == nil {
			return fmt.Errorf("fdpass: Start: %q has no Conn", f.Name)
		}
		fd, err := dup(f.Conn)
		if err != nil {
			return fmt.Errorf("fdpass: Start: duplicate %q: %w", f.Name, err)
		}
		// An *os.File made from a non-blocking descriptor leaves it so
		// when os/exec asks for its Fd.
		dups = append(dups, os.NewFile(uintptr(fd), f.Name))
		names[i] = f.Name
	}
	env := cmd.Env
	if env == nil {
		env = os.Environ()
	}
	orig := *cmd
	cmd.Path = shimPath
	cmd.Args = append([]string{"sh", "-c", shimScript, path}, cmd.Args[min(1, len(cmd.Args)):]...)
	cmd.Env = append(stripEnv(env),
		envListenFDs+"="+strconv.Itoa(len(files)),
		envListenFDNames+"="+strings.Join(names, ":"))
	cmd.ExtraFiles = append(slices.Clip(dups), orig.ExtraFiles...)
	err := cmd.Start()
	cmd.Path, cmd.Args, cmd.Env, cmd.ExtraFiles = orig.Path, orig.Args, orig.Env, orig.ExtraFiles
	if err != nil {
		return fmt.Errorf("fdpass: Start %s: %w", orig.Path, err)
	}
	return nil
}
