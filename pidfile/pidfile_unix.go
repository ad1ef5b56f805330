//go:build unix

package pidfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

const (
	// maxSize is the largest pidfile Read accepts. A PID needs at most 10 digits; the rest
	// is room for trailing whitespace written by other tools.
	maxSize = 64
	// maxPID is the largest PID accepted: pid_t is a signed 32-bit integer on every unix.
	maxPID = 1<<31 - 1
	// removeAttempts bounds how often Remove starts over because the file was replaced
	// between reading it and unlinking it.
	removeAttempts = 3
)

// Check reports whether a pidfile could be written at path, without changing anything
// visible: path is not empty, its directory exists, is a directory and is writable by this
// process, and path itself is not a directory. Writability is proven by creating and removing
// an empty file named ".<base>.check-<random>" next to path. Call it at start-up so a bad
// path fails before the process does any work, not at the end of a hand-over.
//
// Each error says what is wrong and what to do about it, for example
// "pidfile: directory /nope does not exist: create it or choose another pidfile path".
func Check(path string) error {
	if err := checkPath(path); err != nil {
		return err
	}
	dir, base := filepath.Dir(path), filepath.Base(path)

	var dst unix.Stat_t
	if err := unix.Stat(dir, &dst); err != nil {
		if err == unix.ENOENT {
			return fmt.Errorf("pidfile: directory %s does not exist: create it or choose another pidfile path", dir)
		}
		return fmt.Errorf("pidfile: cannot use directory %s (%w): choose another pidfile path",
			dir, &os.PathError{Op: "stat", Path: dir, Err: err})
	}
	if dst.Mode&unix.S_IFMT != unix.S_IFDIR {
		return fmt.Errorf("pidfile: %s is not a directory: choose a pidfile path inside an existing directory", dir)
	}

	var pst unix.Stat_t
	exists := true
	if err := unix.Lstat(path, &pst); err != nil {
		if err != unix.ENOENT {
			return fmt.Errorf("pidfile: cannot inspect %s: %w", path, &os.PathError{Op: "lstat", Path: path, Err: err})
		}
		exists = false
	}
	if exists && pst.Mode&unix.S_IFMT == unix.S_IFDIR {
		return fmt.Errorf("pidfile: %s is a directory: name a file inside it instead, such as %s",
			path, filepath.Join(path, "app.pid"))
	}

	if err := probeDir(dir, base); err != nil {
		return err
	}

	// In a sticky directory such as /tmp, rename(2) may only replace a file owned by us or
	// by the directory's owner; the probe above cannot notice that.
	if exists && dst.Mode&unix.S_ISVTX != 0 {
		euid := int64(os.Geteuid())
		if euid != 0 && euid != int64(pst.Uid) && euid != int64(dst.Uid) {
			return fmt.Errorf("pidfile: %s belongs to uid %d in sticky directory %s, so this process (uid %d) cannot replace it: remove it or choose another pidfile path",
				path, pst.Uid, dir, euid)
		}
	}
	return nil
}

// probeDir proves that files can be created in dir by creating and removing one.
func probeDir(dir, base string) error {
	probe := filepath.Join(dir, "."+base+".check-"+randomPart())
	fd, err := openNoEINTR(probe, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		perr := &os.PathError{Op: "create", Path: probe, Err: err}
		if err == unix.EACCES || err == unix.EPERM || err == unix.EROFS {
			return fmt.Errorf("pidfile: directory %s is not writable (%w): fix its permissions, run as a user who may write there, or choose another pidfile path",
				dir, perr)
		}
		return fmt.Errorf("pidfile: cannot create files in directory %s (%w): choose another pidfile path", dir, perr)
	}
	closeErr := unix.Close(fd)
	if err := unix.Unlink(probe); err != nil {
		return fmt.Errorf("pidfile: could not remove probe file %s (%w): delete it by hand",
			probe, &os.PathError{Op: "unlink", Path: probe, Err: err})
	}
	if closeErr != nil {
		return fmt.Errorf("pidfile: probing directory %s: %w", dir, &os.PathError{Op: "close", Path: probe, Err: closeErr})
	}
	return nil
}

// Write atomically replaces the file at path with pid in decimal and a newline, mode 0644
// whatever the umask. It writes a temporary file named ".<base>.tmp-<random>" in the same
// directory and renames it over path. Readers see the old content or the new, never a mix.
// Nothing is fsynced: a pidfile describes a running process, and after a machine crash no
// process is running, whatever the file says; an fsync would only lengthen every upgrade
// (measured 2-5 ms on a loaded virtual disk, in the window between the new process being
// told to go and it serving).
//
// On any failure before the rename the temporary file is removed and the previous pidfile
// is left unchanged. A symbolic link at path is replaced by a regular file; its target is never
// opened.
func Write(path string, pid int) error {
	return write(path, pid, osFileOps{})
}

// write is Write with its filesystem operations injected, so tests can make any step fail.
func write(path string, pid int, ops fileOps) error {
	if err := checkPath(path); err != nil {
		return err
	}
	if err := checkPID(pid); err != nil {
		return fmt.Errorf("pidfile: cannot write %s: %w", path, err)
	}
	dir, base := filepath.Dir(path), filepath.Base(path)

	// The random part makes a collision improbable, so O_EXCL failing means a real problem
	// rather than a collision worth retrying.
	tmp := filepath.Join(dir, "."+base+".tmp-"+randomPart())
	f, err := ops.create(tmp)
	if err != nil {
		return fmt.Errorf("pidfile: cannot create a temporary file next to %s, previous pidfile left unchanged: %w", path, err)
	}
	if err := fill(f, pid); err != nil {
		return discard(ops, tmp, fmt.Errorf("pidfile: cannot write PID %d to %s, previous pidfile left unchanged: %w", pid, path, err))
	}
	if err := ops.rename(tmp, path); err != nil {
		return discard(ops, tmp, fmt.Errorf("pidfile: cannot replace %s, previous pidfile left unchanged: %w", path, err))
	}
	return nil
}

// randomPart returns 16 random hex digits for a temporary file's name. They come from
// math/rand/v2, which the runtime seeds at random: crypto/rand would cost a new generation
// about 50 µs on its way to ready, to set up its generator for this one name, and O_EXCL
// (never following a symbolic link) is what keeps the name safe, not its secrecy.
func randomPart() string {
	s := strconv.FormatUint(rand.Uint64(), 16)
	return strings.Repeat("0", 16-len(s)) + s
}

// fill writes pid to f and sets its mode, then closes f whatever happened.
func fill(f tempFile, pid int) error {
	b := strconv.AppendInt(nil, int64(pid), 10)
	b = append(b, '\n')
	n, err := f.Write(b)
	if err == nil && n != len(b) {
		err = io.ErrShortWrite
	}
	if err == nil {
		// Set explicitly: the mode given at creation is filtered by the umask.
		err = f.Chmod(0o644)
	}
	// After an earlier failure the file is discarded, so its close error adds nothing.
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// discard removes the temporary file tmp after err and returns err, joined with the removal
// error if the file could not be removed.
func discard(ops fileOps, tmp string, err error) error {
	if rerr := ops.remove(tmp); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
		return errors.Join(err, fmt.Errorf("pidfile: could not remove temporary file %s, delete it by hand: %w", tmp, rerr))
	}
	return err
}

// Read returns the PID named by the pidfile at path.
//
// If the file does not exist the error wraps [fs.ErrNotExist]. If it exists but does not hold
// one positive decimal PID, optionally followed by whitespace, within 64 bytes, the error
// wraps [ErrMalformed]. A file that is not a regular file (a directory, a FIFO) is an error
// too; Read never blocks on one.
func Read(path string) (int, error) {
	if err := checkPath(path); err != nil {
		return 0, err
	}
	pid, _, err := readPID(path, 0)
	return pid, err
}

// readPID opens path with flags added to the usual ones, reads and parses it, and returns
// the PID with the identity of the file it came from.
func readPID(path string, flags int) (int, unix.Stat_t, error) {
	var st unix.Stat_t
	// O_NONBLOCK keeps open from waiting for a writer if path is a FIFO; it has no effect
	// on the regular files we go on to read.
	fd, err := openNoEINTR(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK|flags, 0)
	if err != nil {
		return 0, st, fmt.Errorf("pidfile: %w", &os.PathError{Op: "open", Path: path, Err: err})
	}
	// Closing a read-only descriptor cannot lose data; there is nothing to report.
	defer unix.Close(fd)

	if err := unix.Fstat(fd, &st); err != nil {
		return 0, st, fmt.Errorf("pidfile: %w", &os.PathError{Op: "fstat", Path: path, Err: err})
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return 0, st, fmt.Errorf("pidfile: %s is not a regular file: remove it or choose another pidfile path", path)
	}

	var buf [maxSize + 1]byte
	n := 0
	for n < len(buf) {
		m, err := unix.Read(fd, buf[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, st, fmt.Errorf("pidfile: %w", &os.PathError{Op: "read", Path: path, Err: err})
		}
		if m == 0 {
			break
		}
		n += m
	}
	if n > maxSize {
		return 0, st, malformed(path, buf[:maxSize], fmt.Sprintf("it is longer than %d bytes", maxSize))
	}
	pid, why := parsePID(buf[:n])
	if why != "" {
		return 0, st, malformed(path, buf[:n], why)
	}
	return pid, st, nil
}

// parsePID parses pidfile content: a positive decimal PID in canonical form (no sign, no
// leading zeros) followed by nothing but whitespace. It returns the PID, or a reason the
// content is rejected.
func parsePID(b []byte) (int, string) {
	s := strings.TrimRight(string(b), " \t\r\n")
	digits := 0
	for digits < len(s) && '0' <= s[digits] && s[digits] <= '9' {
		digits++
	}
	switch {
	case len(s) == 0:
		return 0, "it holds no PID"
	case digits == 0:
		return 0, "it does not start with a decimal digit"
	case digits < len(s):
		return 0, "the number is followed by something other than whitespace"
	case s == "0":
		return 0, "PID 0 names no process"
	case s[0] == '0':
		return 0, "the number has leading zeros"
	case len(s) > len(strconv.Itoa(maxPID)):
		return 0, fmt.Sprintf("the PID is larger than %d", maxPID)
	}
	pid, err := strconv.ParseInt(s, 10, 64)
	if err != nil || pid > maxPID {
		return 0, fmt.Sprintf("the PID is larger than %d", maxPID)
	}
	return int(pid), ""
}

func malformed(path string, content []byte, why string) error {
	return fmt.Errorf("%w: %s holds %q: %s; remove it if no process owns it", ErrMalformed, path, content, why)
}

// Remove deletes the pidfile at path if, and only if, it names pid. A missing file is not an
// error. If the file names another process the error wraps [ErrNotOwner], says which PID the
// file names, and the file is left in place; after a hand-over that is what the old process
// should expect. A malformed file, or a symbolic link at path, is left in place and reported.
//
// Remove reads the file, checks that path still refers to the very file it read (starting
// over if a concurrent [Write] replaced it), and unlinks it. POSIX offers no
// unlink-if-unchanged, so a Write by another process landing in the microseconds between that
// last check and the unlink is lost. This is accepted: the only writers of one pidfile are
// processes of the same program, and a hand-over orders them (the new process writes before
// it reports ready; the old one removes only after that, and then finds [ErrNotOwner]).
func Remove(path string, pid int) error {
	if err := checkPath(path); err != nil {
		return err
	}
	if err := checkPID(pid); err != nil {
		return fmt.Errorf("pidfile: cannot remove %s: %w", path, err)
	}
	for range removeAttempts {
		var lst unix.Stat_t
		if err := unix.Lstat(path, &lst); err != nil {
			if err == unix.ENOENT {
				return nil
			}
			return fmt.Errorf("pidfile: %w", &os.PathError{Op: "lstat", Path: path, Err: err})
		}
		if lst.Mode&unix.S_IFMT == unix.S_IFLNK {
			return fmt.Errorf("pidfile: not removing %s: it is a symbolic link, not a pidfile written by Write; remove it by hand", path)
		}

		// O_NOFOLLOW: if path became a symbolic link since the Lstat, fail rather than judge
		// the link's target.
		got, st, err := readPID(path, unix.O_NOFOLLOW)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if got != pid {
			return fmt.Errorf("%w: %s names PID %d, not %d; left in place", ErrNotOwner, path, got, pid)
		}

		if err := unix.Lstat(path, &lst); err != nil {
			if err == unix.ENOENT {
				return nil
			}
			return fmt.Errorf("pidfile: %w", &os.PathError{Op: "lstat", Path: path, Err: err})
		}
		if lst.Dev != st.Dev || lst.Ino != st.Ino {
			continue // replaced since we read it: judge the new file
		}
		if err := unix.Unlink(path); err != nil {
			if err == unix.ENOENT {
				return nil
			}
			return fmt.Errorf("pidfile: %w", &os.PathError{Op: "unlink", Path: path, Err: err})
		}
		return nil
	}
	return fmt.Errorf("pidfile: not removing %s: it was replaced %d times while being checked; another process keeps rewriting it",
		path, removeAttempts)
}

// checkPath rejects paths that cannot name a pidfile.
func checkPath(path string) error {
	if path == "" {
		return errors.New("pidfile: empty path: name a file, such as /run/app.pid")
	}
	if os.IsPathSeparator(path[len(path)-1]) {
		return fmt.Errorf("pidfile: %s ends in a slash: name a file, not a directory", path)
	}
	if base := filepath.Base(path); base == "." || base == ".." {
		return fmt.Errorf("pidfile: %s names a directory: name a file inside it", path)
	}
	return nil
}

// checkPID rejects numbers that cannot be a process ID.
func checkPID(pid int) error {
	if pid <= 0 || pid > maxPID {
		return fmt.Errorf("%d is not a process ID (want 1 to %d)", pid, maxPID)
	}
	return nil
}

// openNoEINTR is unix.Open, retried when interrupted by a signal (possible on network and
// FUSE filesystems even with SA_RESTART).
func openNoEINTR(path string, flags int, mode uint32) (int, error) {
	for {
		fd, err := unix.Open(path, flags, mode)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// fileOps is the seam between write and the filesystem. Write uses osFileOps; tests inject
// failures (ENOSPC, a failed rename) without touching package state.
type fileOps interface {
	// create makes a new file exclusively, never following a symbolic link.
	create(name string) (tempFile, error)
	rename(oldpath, newpath string) error
	remove(name string) error
}

// tempFile is the part of *os.File that write uses.
type tempFile interface {
	io.Writer
	Chmod(mode os.FileMode) error
	Close() error
}

// osFileOps is fileOps on the real filesystem.
type osFileOps struct{}

func (osFileOps) create(name string) (tempFile, error) {
	// os.OpenFile adds O_CLOEXEC itself; it is spelled out because it matters.
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err // not f: a nil *os.File in an interface is not a nil interface
	}
	return f, nil
}

func (osFileOps) rename(oldpath, newpath string) error { return os.Rename(oldpath, newpath) }

func (osFileOps) remove(name string) error { return os.Remove(name) }
