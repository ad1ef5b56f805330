//go:build unix

package upgrade

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/handoff-go/handoff/pidfile"
)

// installProgram copies the test binary to dir/app with its sum beside it,
// as a deploy installs a build, and returns the path.
func installProgram(t *testing.T, dir string) string {
	t.Helper()
	self, err := os.Executable()
	require.NoError(t, err)
	src, err := os.Open(self)
	require.NoError(t, err)
	defer src.Close()
	path := filepath.Join(dir, "app")
	dst, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	require.NoError(t, err)
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(dst, h), src)
	require.NoError(t, err)
	require.NoError(t, dst.Close())
	require.NoError(t, os.WriteFile(path+".sha256", []byte(hex.EncodeToString(h.Sum(nil))+"  app\n"), 0o644))
	return path
}

// TestCheckedProgramRuns: the file checked is the file started, even when
// another is renamed into its place between the check and the start.
func TestCheckedProgramRuns(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("a program is started from its descriptor on Linux only")
	}
	dir := t.TempDir()
	path := installProgram(t, dir)
	pidPath := filepath.Join(dir, "app.pid")
	swapped := false
	check := func(f *os.File) error {
		if err := SHA256File(f); err != nil {
			return err
		}
		// A deploy replaces the file after the check: a program that
		// would fail the upgrade if it ran.
		bad := filepath.Join(dir, "bad")
		require.NoError(t, os.WriteFile(bad, []byte("#!/bin/sh\necho replaced >&2\nexit 42\n"), 0o755))
		require.NoError(t, os.Rename(bad, path))
		swapped = true
		return nil
	}
	u := newTestUpgrader(t, "ready", Options{PIDFile: pidPath, Path: path, Check: check}, envPIDFile+"="+pidPath)
	ln, err := u.Listen(t.Context(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	require.NoError(t, u.Ready())
	require.NoError(t, u.Upgrade(t.Context()), "the checked build runs, not the file renamed over it")
	require.True(t, swapped)
	requireExit(t, u)
	pid, err := pidfile.Read(pidPath)
	require.NoError(t, err)
	assert.NotEqual(t, os.Getpid(), pid)
	ents, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	for _, e := range ents {
		target, _ := os.Readlink("/proc/self/fd/" + e.Name())
		assert.NotContains(t, target, filepath.Join(dir, "app"), "the program's descriptor is not kept")
	}
}

// TestCheckRefuses: a program that fails its check is never started, and
// the upgrade says why, at its own stage.
func TestCheckRefuses(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	for name, spoil := range map[string]func(path string){
		"mismatch": func(path string) {
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			require.NoError(t, err)
			_, err = f.Write([]byte("half a copy"))
			require.NoError(t, err)
			require.NoError(t, f.Close())
		},
		"no sum": func(path string) { require.NoError(t, os.Remove(path+".sha256")) },
		"bad sum": func(path string) {
			require.NoError(t, os.WriteFile(path+".sha256", []byte("not a sum\n"), 0o644))
		},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := installProgram(t, dir)
			spoil(path)
			u := newTestUpgrader(t, "ready", Options{Path: path, Check: SHA256File})
			require.NoError(t, u.Ready())
			err := u.Upgrade(t.Context())
			var ce *ChildError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, StageCheck, ce.Stage)
			assert.Zero(t, ce.PID, "nothing was started")
			assert.Contains(t, err.Error(), "failed Options.Check")
			t.Log(err)
			// The old generation serves on and can upgrade once the build is fixed.
			installProgram(t, dir)
			require.NoError(t, u.Upgrade(t.Context()))
		})
	}
}

// TestNoRollback: a first generation has nothing to roll back to, and a
// negative window is refused at New with the field named.
func TestNoRollback(t *testing.T) {
	u := newTestUpgrader(t, "ready", Options{})
	require.NoError(t, u.Ready())
	assert.ErrorIs(t, u.Rollback(t.Context(), nil), ErrNoRollback)
	_, err := New(Options{RollbackWindow: -time.Second})
	assert.ErrorContains(t, err, "Options.RollbackWindow is negative")
}

// TestChildNamed: a program started from its descriptor is named as one
// started by its path, in every thread, not after the descriptor's number
// (ps, top and pgrep show it).
func TestChildNamed(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("a program is started from its descriptor on Linux only")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "checkout-service-v2") // longer than the kernel keeps
	require.NoError(t, os.Rename(installProgram(t, dir), path))
	out := filepath.Join(dir, "names")
	u := newTestUpgrader(t, "names", Options{Path: path}, envNames+"="+out)
	ln, err := u.Listen(t.Context(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	require.NoError(t, u.Ready())
	require.NoError(t, u.Upgrade(t.Context()))
	requireExit(t, u)
	var b []byte
	require.Eventually(t, func() bool {
		b, err = os.ReadFile(out)
		return err == nil && len(b) > 0
	}, 10*time.Second, 10*time.Millisecond)
	names := strings.Fields(string(b))
	require.NotEmpty(t, names)
	for _, n := range names {
		assert.Equal(t, "checkout-servic", n, "every thread has the program's name, as the kernel cuts it")
	}
}

// TestAdoptAhead: a new generation handed many sockets adopts them ahead,
// on other threads: it gets every socket it asks for, stream and datagram,
// by its name or by its address under another (a TCP socket handed as
// 127.0.0.1:0 asked for as localhost:port), each held once; the one it did
// not ask for is closed at Ready; and every one serves.
func TestAdoptAhead(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the child reports its descriptors from /proc")
	}
	dir := t.TempDir()
	const n = aheadMin + 8
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := strconv.Itoa(tcp.Addr().(*net.TCPAddr).Port)
	tcp.Close() // free again for the parent's own: a port the child is told
	u := newTestUpgrader(t, "many", Options{},
		envUnix+"="+dir, envFiles+"="+strconv.Itoa(n), envTCP+"="+port, "GOMAXPROCS=4")
	ln, err := u.Listen(t.Context(), "tcp", "127.0.0.1:"+port)
	require.NoError(t, err)
	defer ln.Close()
	var want []string
	for i := range n {
		path := filepath.Join(dir, fmt.Sprintf("s%d.sock", i))
		ln, err := u.Listen(t.Context(), "unix", path)
		require.NoError(t, err)
		defer ln.Close()
		if i < n-1 {
			want = append(want, path)
		}
	}
	dgram := filepath.Join(dir, "d.sock")
	pc, err := u.ListenPacket(t.Context(), "unixgram", dgram)
	require.NoError(t, err)
	defer pc.Close()
	want = append(want, dgram)
	require.NoError(t, u.Ready())
	require.NoError(t, u.Upgrade(t.Context()))
	requireExit(t, u)

	var b []byte
	require.Eventually(t, func() bool {
		b, err = os.ReadFile(filepath.Join(dir, "report"))
		return err == nil
	}, 10*time.Second, 10*time.Millisecond)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	assert.Equal(t, fmt.Sprintf("adopted ahead %d", n+2), lines[0], "the workers adopted every socket, the one nobody asked for too")
	held := lines[1:]
	slices.Sort(held)
	slices.Sort(want)
	assert.Equal(t, want, held, "each socket asked for held once; the one not asked for closed")

	dial := func(network, addr string) {
		c, err := net.Dial(network, addr)
		require.NoError(t, err)
		got, err := io.ReadAll(c)
		c.Close()
		require.NoError(t, err)
		assert.Equal(t, "child\n", string(got), addr)
	}
	dial("tcp", "127.0.0.1:"+port)
	for _, path := range want {
		if path != dgram {
			dial("unix", path)
		}
	}
	reply := filepath.Join(dir, "reply.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: reply, Net: "unixgram"})
	require.NoError(t, err)
	defer c.Close()
	_, err = c.WriteTo([]byte("ping"), &net.UnixAddr{Name: dgram, Net: "unixgram"})
	require.NoError(t, err)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
	buf := make([]byte, 16)
	m, _, err := c.ReadFrom(buf)
	require.NoError(t, err)
	assert.Equal(t, "ping", string(buf[:m]), "the datagram socket adopted ahead serves")
}
