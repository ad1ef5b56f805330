//go:build unix

package pidfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// faultyOps is the real filesystem with one step made to fail. The temporary file is really
// created, so the tests see whether write removes it.
type faultyOps struct {
	osFileOps
	created []string

	createErr, writeErr, chmodErr, closeErr error
	renameErr, removeErr                    error
	shortWrite                              bool
}

func (o *faultyOps) create(name string) (tempFile, error) {
	if o.createErr != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: o.createErr}
	}
	f, err := o.osFileOps.create(name)
	if err != nil {
		return nil, err
	}
	o.created = append(o.created, name)
	return &faultyFile{tempFile: f, name: name, ops: o}, nil
}

func (o *faultyOps) rename(oldpath, newpath string) error {
	if o.renameErr != nil {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: o.renameErr}
	}
	return o.osFileOps.rename(oldpath, newpath)
}

func (o *faultyOps) remove(name string) error {
	if o.removeErr != nil {
		return &os.PathError{Op: "remove", Path: name, Err: o.removeErr}
	}
	return o.osFileOps.remove(name)
}

// faultyFile fails the way *os.File does: with an *os.PathError around an errno.
type faultyFile struct {
	tempFile
	name string
	ops  *faultyOps
}

func (f *faultyFile) Write(b []byte) (int, error) {
	switch {
	case f.ops.writeErr != nil:
		return 0, &os.PathError{Op: "write", Path: f.name, Err: f.ops.writeErr}
	case f.ops.shortWrite:
		return f.tempFile.Write(b[:len(b)-1])
	}
	return f.tempFile.Write(b)
}

func (f *faultyFile) Chmod(mode os.FileMode) error {
	if f.ops.chmodErr != nil {
		return &os.PathError{Op: "chmod", Path: f.name, Err: f.ops.chmodErr}
	}
	return f.tempFile.Chmod(mode)
}

func (f *faultyFile) Close() error {
	err := f.tempFile.Close() // always release the descriptor
	if f.ops.closeErr != nil {
		return &os.PathError{Op: "close", Path: f.name, Err: f.ops.closeErr}
	}
	return err
}

func TestWriteFailures(t *testing.T) {
	const oldContent = "111\n"
	for _, tc := range []struct {
		name   string
		ops    faultyOps
		wantIs error
	}{
		{name: "create ENOSPC", ops: faultyOps{createErr: syscall.ENOSPC}, wantIs: syscall.ENOSPC},
		{name: "write ENOSPC", ops: faultyOps{writeErr: syscall.ENOSPC}, wantIs: syscall.ENOSPC},
		{name: "short write", ops: faultyOps{shortWrite: true}, wantIs: io.ErrShortWrite},
		{name: "chmod EPERM", ops: faultyOps{chmodErr: syscall.EPERM}, wantIs: syscall.EPERM},
		{name: "close EDQUOT", ops: faultyOps{closeErr: syscall.EDQUOT}, wantIs: syscall.EDQUOT},
		{name: "rename EXDEV", ops: faultyOps{renameErr: syscall.EXDEV}, wantIs: syscall.EXDEV},
		{name: "rename ENOSPC", ops: faultyOps{renameErr: syscall.ENOSPC}, wantIs: syscall.ENOSPC},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "app.pid")
			require.NoError(t, os.WriteFile(path, []byte(oldContent), 0o644))
			ops := tc.ops

			err := write(path, 222, &ops)
			require.Error(t, err)
			assert.ErrorIs(t, err, tc.wantIs)
			assert.True(t, strings.HasPrefix(err.Error(), "pidfile: "), "error %q lacks the package prefix", err)
			assert.Contains(t, err.Error(), path, "the error names the pidfile")

			got, rerr := os.ReadFile(path)
			require.NoError(t, rerr)
			assert.Equal(t, oldContent, string(got), "previous pidfile intact")
			assert.Contains(t, err.Error(), "previous pidfile left unchanged")

			entries, rerr := os.ReadDir(dir)
			require.NoError(t, rerr)
			require.Len(t, entries, 1, "no temporary file left behind")
			assert.Equal(t, "app.pid", entries[0].Name())

			if tc.ops.createErr == nil {
				require.Len(t, ops.created, 1)
				assert.Equal(t, dir, filepath.Dir(ops.created[0]), "temporary file lives beside the pidfile")
				assert.True(t, strings.HasPrefix(filepath.Base(ops.created[0]), ".app.pid.tmp-"), "temporary file name %q", ops.created[0])
			}
		})
	}
}

// TestWriteFailureCleanupFails checks that when the temporary file cannot be removed either,
// both errors are reported and the message says what to delete.
func TestWriteFailureCleanupFails(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.pid")
	ops := faultyOps{writeErr: syscall.ENOSPC, removeErr: syscall.EROFS}

	err := write(path, 222, &ops)
	require.Error(t, err)
	assert.ErrorIs(t, err, syscall.ENOSPC)
	assert.ErrorIs(t, err, syscall.EROFS)
	require.Len(t, ops.created, 1)
	assert.ErrorContains(t, err, "delete it by hand")
	assert.ErrorContains(t, err, ops.created[0])
	require.NoError(t, os.Remove(ops.created[0]))
}

func TestWriteSucceedsThroughSeam(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.pid")
	var ops faultyOps
	require.NoError(t, write(path, 333, &ops))
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "333\n", string(got))
	require.Len(t, ops.created, 1)
	_, err = os.Lstat(ops.created[0])
	assert.True(t, errors.Is(err, os.ErrNotExist), "temporary file was renamed away")
}

func TestParsePID(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
		why  string // substring of the reason; empty for success
	}{
		{in: "1\n", want: 1},
		{in: "", why: "no PID"},
		{in: "x", why: "does not start with a decimal digit"},
		{in: "-1", why: "does not start with a decimal digit"},
		{in: "1x", why: "followed by something other than whitespace"},
		{in: "0", why: "PID 0"},
		{in: "01", why: "leading zeros"},
		{in: "2147483648", why: "larger than 2147483647"},
		{in: "12345678901", why: "larger than 2147483647"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, why := parsePID([]byte(tc.in))
			if tc.why == "" {
				assert.Empty(t, why)
				assert.Equal(t, tc.want, got)
				return
			}
			assert.Contains(t, why, tc.why)
			assert.Zero(t, got)
		})
	}
}
