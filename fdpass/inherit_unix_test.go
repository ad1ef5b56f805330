//go:build unix

package fdpass

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func init() {
	helpers["full"] = helper{run: helperFull, adopts: true}
	helpers["probe"] = helper{run: helperProbe, adopts: true}
}

// shortTempDir returns a directory whose paths fit in a sockaddr_un.
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "fdp")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// mustDup duplicates c into a file for ExtraFiles, as Start does.
func mustDup(t *testing.T, c syscall.Conn, name string) *os.File {
	t.Helper()
	fd, err := dup(c)
	require.NoError(t, err)
	f := os.NewFile(uintptr(fd), name)
	t.Cleanup(func() { f.Close() })
	return f
}

// ownedVars are the variables Inherit must unset.
var ownedVars = []string{envListenFDs, envListenFDNames, envListenPID}

// helperProbe is started by a program that adopted descriptors: it lists
// the descriptors above 2 and the fdpass variables it inherited.
func helperProbe() int {
	// No watchdog: it would take descriptors. The probe does not block.
	var fds, vars []string
	for fd := 3; fd < 1024; fd++ {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil {
			fds = append(fds, strconv.Itoa(fd))
		}
	}
	for _, k := range ownedVars {
		if _, ok := os.LookupEnv(k); ok {
			vars = append(vars, k)
		}
	}
	fmt.Printf("fds:%s env:%s\n", strings.Join(fds, ","), strings.Join(vars, ","))
	return 0
}

// inheritedFDs returns the descriptors of this process, above 2, that
// are not close-on-exec.
func inheritedFDs() map[int]bool {
	fds := map[int]bool{}
	for fd := 3; fd < 1024; fd++ {
		if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil && flags&unix.FD_CLOEXEC == 0 {
			fds[fd] = true
		}
	}
	return fds
}

// helperFull adopts one of everything, uses it, and reports.
func helperFull() int {
	listenPID := os.Getenv(envListenPID) == strconv.Itoa(os.Getpid())
	in, err := Inherit()
	startWatchdog("full")
	if err != nil {
		put("inherit", "%s", describe(err))
		return 1
	}
	for _, k := range ownedVars {
		_, ok := os.LookupEnv(k)
		put("env."+k, "%v", ok)
	}
	put("listen-pid", "%v", listenPID)
	put("names", "%s", strings.Join(in.Names(), ","))

	// Every adopted descriptor is close-on-exec...
	n, _ := strconv.Atoi(os.Getenv("FDPASS_TEST_NFDS"))
	var leaky []string
	for fd := firstFD; fd < firstFD+n; fd++ {
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err != nil || flags&unix.FD_CLOEXEC == 0 {
			leaky = append(leaky, fmt.Sprintf("%d(%v)", fd, err))
		}
	}
	put("not-cloexec", "%s", strings.Join(leaky, ","))
	// ...so a program started now, while all of them are still open and
	// unclaimed, sees none of them, nor the variables.
	exe, err := os.Executable()
	if err != nil {
		put("grandchild", "error: %v", err)
		return 1
	}
	gc := exec.Command(exe)
	gc.Env = append(os.Environ(), helperEnv+"=probe")
	out, err := gc.Output()
	put("grandchild", "%s%s", strings.TrimSpace(string(out)), errSuffix(err))

	deadline := time.Now().Add(10 * time.Second)
	if ln, err := in.Listener("web", "tcp"); err != nil {
		put("web", "%s", describe(err))
	} else {
		ln.(*net.TCPListener).SetDeadline(deadline)
		put("web", "%s", serveOne(ln, "T"))
		put("web.addr", "%s", ln.Addr())
		ln.Close()
	}
	if ln, err := in.Listener("sock", "unix"); err != nil {
		put("sock", "%s", describe(err))
	} else {
		ln.(*net.UnixListener).SetDeadline(deadline)
		put("sock", "%s", serveOne(ln, "U"))
		put("sock.addr", "%s", ln.Addr())
		ln.Close()
	}
	for _, p := range [][2]string{{"dns", "udp"}, {"gram", "unixgram"}} {
		pc, err := in.PacketConn(p[0], p[1])
		if err != nil {
			put(p[0], "%s", describe(err))
			continue
		}
		pc.SetDeadline(deadline)
		put(p[0], "%s", echoOne(pc))
		put(p[0]+".addr", "%s", pc.LocalAddr())
		pc.Close()
	}
	if f, err := in.File("config"); err != nil {
		put("config", "%s", describe(err))
	} else {
		b, err := io.ReadAll(f)
		put("config", "%q%s", b, errSuffix(err))
		f.Close()
	}
	if f, err := in.File("ready"); err != nil {
		put("control", "%s", describe(err))
	} else {
		_, err := f.Write([]byte("ctl-ok"))
		put("control", "%s", describe(err))
		f.Close()
	}
	_, err = in.File("ready")
	put("control.again", "%s", describe(err))
	_, err = in.Listener("web", "tcp")
	put("web.again", "%s", describe(err))
	put("unclaimed", "%s", strings.Join(in.CloseUnclaimed(), ","))
	return 0
}

func errSuffix(err error) string {
	if err != nil {
		return " error: " + err.Error()
	}
	return ""
}

func serveOne(ln net.Listener, reply string) string {
	c, err := ln.Accept()
	if err != nil {
		return describe(err)
	}
	defer c.Close()
	_, err = c.Write([]byte(reply))
	return describe(err)
}

func echoOne(pc net.PacketConn) string {
	buf := make([]byte, 64)
	n, addr, err := pc.ReadFrom(buf)
	if err != nil {
		return describe(err)
	}
	_, err = pc.WriteTo(append([]byte("echo:"), buf[:n]...), addr)
	return describe(err)
}

func TestInheritRealProcess(t *testing.T) {
	dir := shortTempDir(t)
	tcpLn, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer tcpLn.Close()
	unixLn, err := net.Listen("unix", filepath.Join(dir, "s"))
	require.NoError(t, err)
	defer unixLn.Close()
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	defer udp.Close()
	gram, err := net.ListenPacket("unixgram", filepath.Join(dir, "g"))
	require.NoError(t, err)
	defer gram.Close()
	cfgPath := filepath.Join(dir, "config")
	require.NoError(t, os.WriteFile(cfgPath, []byte("listen :8080\n"), 0o600))
	cfg, err := os.Open(cfgPath)
	require.NoError(t, err)
	defer cfg.Close()
	spare, err := os.Open(os.DevNull)
	require.NoError(t, err)
	defer spare.Close()
	pr, pw, err := os.Pipe()
	require.NoError(t, err)
	defer pr.Close()
	defer pw.Close()

	// A stale LISTEN_PID in the environment is replaced by the child's.
	cmd := helperCmd(t, "full", "FDPASS_TEST_NFDS=7", envListenPID+"=1")
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	args := slices.Clone(cmd.Args)
	require.NoError(t, Start(cmd,
		Named{"web", tcpLn.(syscall.Conn)},
		Named{"sock", unixLn.(syscall.Conn)},
		Named{"dns", udp.(syscall.Conn)},
		Named{"gram", gram.(syscall.Conn)},
		Named{"config", cfg},
		Named{"spare", spare},
		Named{"ready", pw},
	))
	assert.Equal(t, args, cmd.Args, "Start leaves cmd as it was")
	assert.Nil(t, cmd.ExtraFiles)
	pw.Close()

	deadline := time.Now().Add(10 * time.Second)
	// TCP and unix stream: the child accepts and answers.
	for _, d := range [][3]string{{"tcp", tcpLn.Addr().String(), "T"}, {"unix", unixLn.Addr().String(), "U"}} {
		c, err := net.DialTimeout(d[0], d[1], 5*time.Second)
		if assert.NoError(t, err, d[0]) {
			c.SetDeadline(deadline)
			b, err := io.ReadAll(c)
			assert.NoError(t, err, d[0])
			assert.Equal(t, d[2], string(b), d[0])
			c.Close()
		}
	}
	// UDP and unixgram: the child echoes.
	udpClient, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	defer udpClient.Close()
	gramClient, err := net.ListenPacket("unixgram", filepath.Join(dir, "c"))
	require.NoError(t, err)
	defer gramClient.Close()
	for _, p := range []struct {
		client net.PacketConn
		to     net.Addr
	}{{udpClient, udp.LocalAddr()}, {gramClient, gram.LocalAddr()}} {
		p.client.SetDeadline(deadline)
		_, err := p.client.WriteTo([]byte("ping"), p.to)
		require.NoError(t, err)
		buf := make([]byte, 64)
		n, _, err := p.client.ReadFrom(buf)
		if assert.NoError(t, err, p.to.Network()) {
			assert.Equal(t, "echo:ping", string(buf[:n]), p.to.Network())
		}
	}
	// The control pipe reaches EOF once the child closed its end.
	pr.SetReadDeadline(deadline)
	ctl, err := io.ReadAll(pr)
	assert.NoError(t, err)
	assert.Equal(t, "ctl-ok", string(ctl))

	require.NoError(t, cmd.Wait(), "stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	r := parseReport([]byte(stdout.String()))
	t.Logf("child report: %v", r)
	for _, k := range ownedVars {
		assert.Equal(t, "false", r["env."+k], "%s still set after Inherit", k)
	}
	assert.Equal(t, "true", r["listen-pid"], "LISTEN_PID is the child's own PID")
	assert.Equal(t, "web,sock,dns,gram,config,spare,ready", r["names"])
	assert.Equal(t, "", r["not-cloexec"], "adopted descriptors without FD_CLOEXEC")
	// The grandchild sees no adopted descriptor (3..9) and no variable.
	// It may see descriptors this test process itself inherited without
	// close-on-exec (from the shell or CI runner): those pass through
	// every exec and are no concern of fdpass.
	gcFDs, gcEnv, ok := strings.Cut(strings.TrimPrefix(r["grandchild"], "fds:"), " env:")
	require.True(t, ok, "grandchild report %q", r["grandchild"])
	assert.Equal(t, "", gcEnv, "a program started by the child inherited the variables")
	ambient := inheritedFDs()
	for _, s := range strings.Split(gcFDs, ",") {
		if s == "" {
			continue
		}
		fd, err := strconv.Atoi(s)
		require.NoError(t, err)
		assert.False(t, fd >= firstFD && fd < firstFD+7, "a program started by the child inherited adopted fd %d", fd)
		assert.True(t, ambient[fd], "a program started by the child inherited fd %d", fd)
	}
	assert.Equal(t, "ok", r["web"])
	assert.Equal(t, tcpLn.Addr().String(), r["web.addr"])
	assert.Equal(t, "ok", r["sock"])
	assert.Equal(t, unixLn.Addr().String(), r["sock.addr"])
	assert.Equal(t, "ok", r["dns"])
	assert.Equal(t, udp.LocalAddr().String(), r["dns.addr"])
	assert.Equal(t, "ok", r["gram"])
	assert.Equal(t, gram.LocalAddr().String(), r["gram.addr"])
	assert.Equal(t, `"listen :8080\n"`, r["config"])
	assert.Equal(t, "ok", r["control"])
	assert.True(t, strings.HasPrefix(r["control.again"], "NotFound"), r["control.again"])
	assert.True(t, strings.HasPrefix(r["web.again"], "NotFound"), r["web.again"])
	assert.Equal(t, "spare", r["unclaimed"])
	assert.Equal(t, cmd.Process.Pid, cmd.ProcessState.Pid(), "the shim execs the program in its own place")

	// The parent's own listener is still in non-blocking mode: Accept
	// honours a deadline instead of blocking the thread forever.
	tl := tcpLn.(*net.TCPListener)
	tl.SetDeadline(time.Now().Add(50 * time.Millisecond))
	done := make(chan error, 1)
	go func() {
		c, err := tl.Accept()
		if c != nil {
			c.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		assert.ErrorIs(t, err, os.ErrDeadlineExceeded)
	case <-time.After(5 * time.Second):
		t.Fatal("Accept on the parent's listener ignored its deadline: the socket was left in blocking mode")
	}
}

// TestStartRefuses: bad input fails before anything starts, and leaves
// the command as it was.
func TestStartRefuses(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed.Close()
	exe, err := os.Executable()
	require.NoError(t, err)
	for _, c := range []struct {
		name  string
		cmd   *exec.Cmd
		files []Named
		want  string
	}{
		{"bad name", exec.Command(exe), []Named{{"a:b", ln.(syscall.Conn)}}, "contains ':'"},
		{"empty name", exec.Command(exe), []Named{{"", ln.(syscall.Conn)}}, "empty name"},
		{"no conn", exec.Command(exe), []Named{{"web", nil}}, `"web" has no Conn`},
		{"closed socket", exec.Command(exe), []Named{{"web", closed.(syscall.Conn)}}, `duplicate "web"`},
		{"no program", exec.Command(filepath.Join(t.TempDir(), "nosuch")), nil, "no such file"},
		{"not found in PATH", exec.Command("handoff-no-such-program"), nil, "executable file not found"},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := slices.Clone(c.cmd.Args)
			err := Start(c.cmd, c.files...)
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.want)
			assert.Nil(t, c.cmd.Process, "started anyway")
			assert.Equal(t, args, c.cmd.Args)
			assert.Nil(t, c.cmd.ExtraFiles)
		})
	}
}
