//go:build unix

package pidfile_test

import (
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/handoff-go/handoff/pidfile"
)

// These tests are not parallel: TestWriteModeIgnoresUmask changes the process-wide umask.

// dirNames lists dir, sorted.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// assertNoLeftovers checks that no temporary or probe file is left in dir.
func assertNoLeftovers(t *testing.T, dir string) {
	t.Helper()
	for _, name := range dirNames(t, dir) {
		assert.False(t, strings.Contains(name, ".tmp-") || strings.Contains(name, ".check-"),
			"leftover file %q in %s", name, dir)
	}
}

func writeRaw(t *testing.T, path, content string) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
}

func readRaw(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}

func TestWriteReadRoundTrip(t *testing.T) {
	for _, pid := range []int{1, 42, os.Getpid(), 4194304, math.MaxInt32} {
		t.Run(strconv.Itoa(pid), func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "app.pid")

			require.NoError(t, pidfile.Write(path, pid))

			got, err := pidfile.Read(path)
			require.NoError(t, err)
			assert.Equal(t, pid, got)
			assert.Equal(t, strconv.Itoa(pid)+"\n", readRaw(t, path), "content is exactly the PID and a newline")
			assert.Equal(t, []string{"app.pid"}, dirNames(t, dir))
		})
	}
}

func TestWriteReplacesPrevious(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.pid")
	require.NoError(t, pidfile.Write(path, 100))
	require.NoError(t, pidfile.Write(path, 200))

	got, err := pidfile.Read(path)
	require.NoError(t, err)
	assert.Equal(t, 200, got)
	assert.Equal(t, "200\n", readRaw(t, path))
	assert.Equal(t, []string{"app.pid"}, dirNames(t, dir))
}

func TestWriteRelativePath(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	require.NoError(t, pidfile.Check("app.pid"))
	require.NoError(t, pidfile.Write("app.pid", 7))
	assert.Equal(t, "7\n", readRaw(t, filepath.Join(dir, "app.pid")))
	assert.Equal(t, []string{"app.pid"}, dirNames(t, dir))
}

func TestWriteModeIgnoresUmask(t *testing.T) {
	old := unix.Umask(0o077)
	t.Cleanup(func() { unix.Umask(old) })

	for _, tc := range []struct {
		name     string
		existing os.FileMode // 0: no previous file
	}{
		{name: "new file"},
		{name: "replaces 0600 file", existing: 0o600},
		{name: "replaces 0666 file", existing: 0o666},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "app.pid")
			if tc.existing != 0 {
				writeRaw(t, path, "1\n")
				require.NoError(t, os.Chmod(path, tc.existing))
			}

			require.NoError(t, pidfile.Write(path, 1234))

			fi, err := os.Lstat(path)
			require.NoError(t, err)
			assert.True(t, fi.Mode().IsRegular())
			assert.Equal(t, os.FileMode(0o644), fi.Mode().Perm())
			assert.Equal(t, "1234\n", readRaw(t, path))
		})
	}
}

func TestWriteReplacesSymlink(t *testing.T) {
	for _, tc := range []struct {
		name   string
		target func(t *testing.T, dir string) string // returns the link target
		check  func(t *testing.T, target string)     // the target must be untouched
	}{
		{
			name: "link to file",
			target: func(t *testing.T, dir string) string {
				p := filepath.Join(dir, "precious")
				writeRaw(t, p, "do not touch\n")
				require.NoError(t, os.Chmod(p, 0o600))
				return p
			},
			check: func(t *testing.T, target string) {
				assert.Equal(t, "do not touch\n", readRaw(t, target))
				fi, err := os.Stat(target)
				require.NoError(t, err)
				assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
			},
		},
		{
			name: "dangling link",
			target: func(t *testing.T, dir string) string {
				return filepath.Join(dir, "nowhere")
			},
			check: func(t *testing.T, target string) {
				_, err := os.Lstat(target)
				assert.ErrorIs(t, err, fs.ErrNotExist, "the link target must not be created")
			},
		},
		{
			name: "link to directory",
			target: func(t *testing.T, dir string) string {
				p := filepath.Join(dir, "sub")
				require.NoError(t, os.Mkdir(p, 0o755))
				return p
			},
			check: func(t *testing.T, target string) {
				assert.Empty(t, dirNames(t, target))
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			target := tc.target(t, dir)
			path := filepath.Join(dir, "app.pid")
			require.NoError(t, os.Symlink(target, path))

			require.NoError(t, pidfile.Write(path, 99))

			fi, err := os.Lstat(path)
			require.NoError(t, err)
			assert.True(t, fi.Mode().IsRegular(), "the link itself is replaced by a regular file")
			assert.Equal(t, "99\n", readRaw(t, path))
			tc.check(t, target)
			assertNoLeftovers(t, dir)
		})
	}
}

func TestWriteErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		path    func(dir string) string
		pid     int
		wantMsg string
		is      error
	}{
		{name: "empty path", path: func(string) string { return "" }, pid: 1, wantMsg: "empty path"},
		{name: "trailing slash", path: func(d string) string { return d + "/app.pid/" }, pid: 1, wantMsg: "ends in a slash"},
		{name: "dot", path: func(d string) string { return d + "/." }, pid: 1, wantMsg: "names a directory"},
		{name: "missing directory", path: func(d string) string { return filepath.Join(d, "nope", "app.pid") }, pid: 1, is: fs.ErrNotExist},
		{name: "path is a directory", path: func(d string) string { return filepath.Join(d, "sub") }, pid: 1, wantMsg: "previous pidfile left unchanged"},
		{name: "pid zero", path: func(d string) string { return filepath.Join(d, "app.pid") }, pid: 0, wantMsg: "0 is not a process ID"},
		{name: "pid negative", path: func(d string) string { return filepath.Join(d, "app.pid") }, pid: -5, wantMsg: "-5 is not a process ID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			require.NoError(t, os.Mkdir(filepath.Join(dir, "sub"), 0o755))
			writeRaw(t, filepath.Join(dir, "app.pid"), "555\n")

			err := pidfile.Write(tc.path(dir), tc.pid)
			require.Error(t, err)
			assert.True(t, strings.HasPrefix(err.Error(), "pidfile: "), "error %q lacks the package prefix", err)
			if tc.wantMsg != "" {
				assert.ErrorContains(t, err, tc.wantMsg)
			}
			if tc.is != nil {
				assert.ErrorIs(t, err, tc.is)
			}
			assert.Equal(t, "555\n", readRaw(t, filepath.Join(dir, "app.pid")), "previous pidfile intact")
			assert.Empty(t, dirNames(t, filepath.Join(dir, "sub")))
			assert.Equal(t, []string{"app.pid", "sub"}, dirNames(t, dir))
		})
	}

	if strconv.IntSize == 64 {
		t.Run("pid above pid_t", func(t *testing.T) {
			dir := t.TempDir()
			big := int64(math.MaxInt32) + 1
			err := pidfile.Write(filepath.Join(dir, "app.pid"), int(big))
			assert.ErrorContains(t, err, "is not a process ID")
			assert.Empty(t, dirNames(t, dir))
		})
	}
}

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir string) string // returns the path to check
	}{
		{name: "new file", setup: func(t *testing.T, dir string) string { return filepath.Join(dir, "app.pid") }},
		{name: "existing file", setup: func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "app.pid")
			writeRaw(t, p, "12\n")
			return p
		}},
		{name: "existing symlink", setup: func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "app.pid")
			require.NoError(t, os.Symlink(filepath.Join(dir, "nowhere"), p))
			return p
		}},
		{name: "nested", setup: func(t *testing.T, dir string) string {
			require.NoError(t, os.MkdirAll(filepath.Join(dir, "a", "b"), 0o755))
			return filepath.Join(dir, "a", "b", "app.pid")
		}},
	} {
		t.Run("ok/"+tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := tc.setup(t, dir)
			before := dirNames(t, filepath.Dir(path))

			require.NoError(t, pidfile.Check(path))
			assert.Equal(t, before, dirNames(t, filepath.Dir(path)), "Check changes nothing visible")
		})
	}

	for _, tc := range []struct {
		name    string
		setup   func(t *testing.T, dir string) string
		wantMsg string
	}{
		{name: "empty path", setup: func(*testing.T, string) string { return "" }, wantMsg: "empty path"},
		{name: "missing directory", setup: func(t *testing.T, dir string) string {
			return filepath.Join(dir, "nope", "app.pid")
		}, wantMsg: "directory " + "DIR/nope does not exist: create it or choose another pidfile path"},
		{name: "directory is a file", setup: func(t *testing.T, dir string) string {
			writeRaw(t, filepath.Join(dir, "file"), "")
			return filepath.Join(dir, "file", "app.pid")
		}, wantMsg: "DIR/file is not a directory"},
		{name: "path is a directory", setup: func(t *testing.T, dir string) string {
			require.NoError(t, os.Mkdir(filepath.Join(dir, "app.pid"), 0o755))
			return filepath.Join(dir, "app.pid")
		}, wantMsg: "DIR/app.pid is a directory: name a file inside it"},
		{name: "trailing slash", setup: func(t *testing.T, dir string) string {
			return dir + "/app.pid/"
		}, wantMsg: "ends in a slash"},
		{name: "not writable", setup: func(t *testing.T, dir string) string {
			if os.Geteuid() == 0 {
				// Root bypasses permission bits, so a read-only directory is still writable.
				t.Skip("running as root: permission bits do not apply")
			}
			ro := filepath.Join(dir, "ro")
			require.NoError(t, os.Mkdir(ro, 0o555))
			t.Cleanup(func() { _ = os.Chmod(ro, 0o755) })
			return filepath.Join(ro, "app.pid")
		}, wantMsg: "DIR/ro is not writable"},
	} {
		t.Run("fail/"+tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := tc.setup(t, dir)

			err := pidfile.Check(path)
			require.Error(t, err)
			assert.ErrorContains(t, err, strings.ReplaceAll(tc.wantMsg, "DIR", dir))
			assert.True(t, strings.HasPrefix(err.Error(), "pidfile: "), "error %q lacks the package prefix", err)
			assertNoLeftovers(t, dir)
		})
	}
}

func TestRead(t *testing.T) {
	for _, tc := range []struct {
		content string
		want    int
	}{
		{"1", 1},
		{"1\n", 1},
		{"4312\n", 4312},
		{"4312\r\n", 4312},
		{"4312 \t\n\n", 4312},
		{"2147483647\n", math.MaxInt32},
		{"7" + strings.Repeat(" ", 63), 7}, // exactly 64 bytes
	} {
		t.Run(strconv.Quote(tc.content), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "app.pid")
			writeRaw(t, path, tc.content)
			got, err := pidfile.Read(path)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestReadMalformed(t *testing.T) {
	for _, content := range []string{
		"",
		"\n",
		"   \n",
		"abc\n",
		"12abc\n",
		"12 34\n",
		"12\n34\n",
		"-5\n",
		"+5\n",
		"0\n",
		"00\n",
		"007\n",
		" 5\n",
		"\t5",
		"5\x00",
		"0x1F\n",
		"1e3\n",
		"2147483648\n",
		"99999999999999999999999\n",
		// A full-width digit is not a decimal digit.
		"\uff17\n",
		"7" + strings.Repeat(" ", 64), // 65 bytes
		strings.Repeat("1", 1<<16),
	} {
		name := content
		if len(name) > 20 {
			name = name[:20] + "..."
		}
		t.Run(strconv.Quote(name), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "app.pid")
			writeRaw(t, path, content)

			pid, err := pidfile.Read(path)
			require.Error(t, err)
			assert.ErrorIs(t, err, pidfile.ErrMalformed)
			assert.ErrorContains(t, err, path)
			assert.Zero(t, pid)
		})
	}
}

func TestReadErrors(t *testing.T) {
	t.Run("missing", func(t *testing.T) {
		_, err := pidfile.Read(filepath.Join(t.TempDir(), "app.pid"))
		require.Error(t, err)
		assert.ErrorIs(t, err, fs.ErrNotExist)
		assert.ErrorIs(t, err, os.ErrNotExist)
	})
	t.Run("directory", func(t *testing.T) {
		_, err := pidfile.Read(t.TempDir())
		assert.ErrorContains(t, err, "is not a regular file")
	})
	t.Run("fifo does not block", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "app.pid")
		require.NoError(t, unix.Mkfifo(path, 0o644))
		_, err := pidfile.Read(path)
		assert.ErrorContains(t, err, "is not a regular file")
	})
	t.Run("symlink is followed", func(t *testing.T) {
		dir := t.TempDir()
		writeRaw(t, filepath.Join(dir, "real.pid"), "31\n")
		require.NoError(t, os.Symlink("real.pid", filepath.Join(dir, "app.pid")))
		pid, err := pidfile.Read(filepath.Join(dir, "app.pid"))
		require.NoError(t, err)
		assert.Equal(t, 31, pid)
	})
}

func TestRemove(t *testing.T) {
	const me = 4312
	for _, tc := range []struct {
		name        string
		content     *string // nil: no file
		wantIs      error
		wantMsg     string
		wantRemoved bool
	}{
		{name: "ours", content: ptr("4312\n"), wantRemoved: true},
		{name: "ours, other whitespace", content: ptr("4312 \r\n"), wantRemoved: true},
		{name: "missing", content: nil, wantRemoved: true},
		{name: "other process", content: ptr("4313\n"), wantIs: pidfile.ErrNotOwner, wantMsg: "names PID 4313, not 4312"},
		{name: "malformed", content: ptr("43x12\n"), wantIs: pidfile.ErrMalformed},
		{name: "empty", content: ptr(""), wantIs: pidfile.ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "app.pid")
			if tc.content != nil {
				writeRaw(t, path, *tc.content)
			}

			err := pidfile.Remove(path, me)
			if tc.wantIs == nil {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, tc.wantIs)
				assert.ErrorContains(t, err, tc.wantMsg)
			}

			_, statErr := os.Lstat(path)
			if tc.wantRemoved {
				assert.ErrorIs(t, statErr, fs.ErrNotExist)
				assert.Empty(t, dirNames(t, dir))
			} else {
				require.NoError(t, statErr, "file must be left in place")
				assert.Equal(t, *tc.content, readRaw(t, path))
				assert.Equal(t, []string{"app.pid"}, dirNames(t, dir))
			}
		})
	}

	t.Run("symlink left alone", func(t *testing.T) {
		dir := t.TempDir()
		target := filepath.Join(dir, "real.pid")
		writeRaw(t, target, "4312\n")
		path := filepath.Join(dir, "app.pid")
		require.NoError(t, os.Symlink(target, path))

		err := pidfile.Remove(path, me)
		assert.ErrorContains(t, err, "symbolic link")
		fi, err := os.Lstat(path)
		require.NoError(t, err)
		assert.Equal(t, fs.ModeSymlink, fi.Mode().Type())
		assert.Equal(t, "4312\n", readRaw(t, target))
	})

	t.Run("invalid pid", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "app.pid")
		writeRaw(t, path, "4312\n")
		assert.ErrorContains(t, pidfile.Remove(path, 0), "not a process ID")
		assert.Equal(t, "4312\n", readRaw(t, path))
	})

	t.Run("after write", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "app.pid")
		require.NoError(t, pidfile.Write(path, me))
		require.NoError(t, pidfile.Remove(path, me))
		assert.Empty(t, dirNames(t, dir))
		require.NoError(t, pidfile.Remove(path, me), "removing twice is fine")
	})
}

// TestHandOver plays the sequence the upgrade package follows: the new process writes, then
// the old one removes on exit and finds the file is no longer its own.
func TestHandOver(t *testing.T) {
	const oldPID, newPID = 100, 200
	dir := t.TempDir()
	path := filepath.Join(dir, "app.pid")

	require.NoError(t, pidfile.Check(path))
	require.NoError(t, pidfile.Write(path, oldPID))
	require.NoError(t, pidfile.Check(path))
	require.NoError(t, pidfile.Write(path, newPID))

	err := pidfile.Remove(path, oldPID)
	require.ErrorIs(t, err, pidfile.ErrNotOwner)
	got, err := pidfile.Read(path)
	require.NoError(t, err)
	assert.Equal(t, newPID, got)

	require.NoError(t, pidfile.Remove(path, newPID))
	assert.Empty(t, dirNames(t, dir))
}

// TestNoDescriptorLeak runs every operation, including failing ones, and checks that the
// number of open descriptors does not grow.
func TestNoDescriptorLeak(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("counts /proc/self/fd")
	}
	countFDs := func() int {
		entries, err := os.ReadDir("/proc/self/fd")
		require.NoError(t, err)
		return len(entries)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "app.pid")
	require.NoError(t, os.Mkdir(filepath.Join(dir, "sub"), 0o755))
	fifo := filepath.Join(dir, "fifo")
	require.NoError(t, unix.Mkfifo(fifo, 0o644))

	before := countFDs()
	for i := 1; i <= 50; i++ {
		assert.NoError(t, pidfile.Check(path))
		assert.NoError(t, pidfile.Write(path, i))
		_, err := pidfile.Read(path)
		assert.NoError(t, err)
		assert.ErrorIs(t, pidfile.Remove(path, i+1), pidfile.ErrNotOwner)
		assert.NoError(t, pidfile.Remove(path, i))
		assert.Error(t, pidfile.Write(filepath.Join(dir, "sub"), i))
		_, err = pidfile.Read(fifo)
		assert.Error(t, err)
		writeRaw(t, path, "junk")
		_, err = pidfile.Read(path)
		assert.Error(t, err)
		require.NoError(t, os.Remove(path))
	}
	assert.Equal(t, before, countFDs())
	assertNoLeftovers(t, dir)
}

func FuzzRead(f *testing.F) {
	for _, seed := range []string{
		"1\n", "4312\n", "4312", "4312\r\n", "4312 \t\n", "2147483647\n", "2147483648\n",
		"", "\n", "0\n", "-1\n", "+1\n", "007\n", " 1\n", "1 2\n", "abc", "1\x00",
		strings.Repeat("9", 64), strings.Repeat("1", 65),
	} {
		f.Add([]byte(seed))
	}
	dir := f.TempDir()
	path := filepath.Join(dir, "app.pid")

	f.Fuzz(func(t *testing.T, data []byte) {
		require.NoError(t, os.WriteFile(path, data, 0o644))

		pid, err := pidfile.Read(path)
		if err != nil {
			assert.ErrorIs(t, err, pidfile.ErrMalformed, "an existing regular file is either a PID or malformed")
			assert.Zero(t, pid)
			return
		}
		assert.Positive(t, pid)
		assert.LessOrEqual(t, len(data), 64)
		assert.Equal(t, strconv.Itoa(pid), strings.TrimRight(string(data), " \t\r\n"),
			"accepted content is the PID, possibly followed by whitespace")

		// Whatever Read accepts, Write reproduces in canonical form.
		require.NoError(t, pidfile.Write(path, pid))
		again, err := pidfile.Read(path)
		require.NoError(t, err)
		assert.Equal(t, pid, again)
	})
}

func ptr(s string) *string { return &s }
