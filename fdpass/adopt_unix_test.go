//go:build unix

package fdpass

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
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
	helpers["ops"] = helper{run: helperOps, adopts: true}
}

// runOps starts the "ops" helper with files at 3.. described by env and
// returns its report: "inherit" and one "<i> <op>" key per op.
func runOps(t *testing.T, files []*os.File, env []string, ops ...string) report {
	t.Helper()
	cmd := helperCmd(t, "ops", append(env, "FDPASS_TEST_OPS="+strings.Join(ops, ";"))...)
	cmd.ExtraFiles = files
	r := runHelper(t, cmd)
	t.Logf("child report: %v", r)
	return r
}

// helperOps adopts what it was given and runs the operations listed in
// FDPASS_TEST_OPS, reporting each result.
func helperOps() int {
	in, err := Inherit() // first: nothing may take a descriptor number before it
	startWatchdog("ops")
	put("inherit", "%s", describe(err))
	var vars []string
	for _, k := range ownedVars {
		if _, ok := os.LookupEnv(k); ok {
			vars = append(vars, k)
		}
	}
	put("env", "%s", strings.Join(vars, ","))
	if err != nil {
		return 0
	}
	ops := os.Getenv("FDPASS_TEST_OPS")
	if ops == "" {
		return 0
	}
	for i, op := range strings.Split(ops, ";") {
		f := append(strings.Fields(op), "", "", "")
		var res string
		switch f[0] {
		case "listener":
			ln, err := in.Listener(f[1], f[2])
			res = describe(err)
			if err == nil {
				res = "ok " + ln.Addr().Network()
				ln.Close()
			}
		case "packet":
			pc, err := in.PacketConn(f[1], f[2])
			res = describe(err)
			if err == nil {
				res = "ok " + pc.LocalAddr().Network()
				pc.Close()
			}
		case "file":
			file, err := in.File(f[1])
			res = describe(err)
			if err == nil {
				res = fmt.Sprintf("ok fd=%d", file.Fd())
				file.Close()
			}
		case "names":
			res = strings.Join(in.Names(), ",")
		case "unclaimed":
			res = strings.Join(in.CloseUnclaimed(), ",")
		case "closed":
			fd, _ := strconv.Atoi(f[1])
			_, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
			res = strconv.FormatBool(errors.Is(err, unix.EBADF))
		default:
			res = "bad op"
		}
		put(fmt.Sprintf("%d %s", i, op), "%s", res)
	}
	return 0
}

func TestInheritWrongKinds(t *testing.T) {
	dir := shortTempDir(t)
	reg, err := os.Open(os.DevNull)
	require.NoError(t, err)
	defer reg.Close()
	tcpLn, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer tcpLn.Close()
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	defer udp.Close()
	conn, err := net.Dial("tcp", tcpLn.Addr().String())
	require.NoError(t, err)
	defer conn.Close()
	unixLn, err := net.Listen("unix", filepath.Join(dir, "s"))
	require.NoError(t, err)
	defer unixLn.Close()
	gram, err := net.ListenPacket("unixgram", filepath.Join(dir, "g"))
	require.NoError(t, err)
	defer gram.Close()

	files := []*os.File{
		mustDup(t, reg, "reg"),                    // fd 3
		mustDup(t, tcpLn.(syscall.Conn), "tcp"),   // fd 4
		mustDup(t, udp.(syscall.Conn), "udp"),     // fd 5
		mustDup(t, conn.(syscall.Conn), "conn"),   // fd 6
		mustDup(t, unixLn.(syscall.Conn), "unix"), // fd 7
		mustDup(t, gram.(syscall.Conn), "gram"),   // fd 8
		mustDup(t, tcpLn.(syscall.Conn), "twice"), // fd 9
		mustDup(t, udp.(syscall.Conn), "twice"),   // fd 10
	}
	env := []string{envListenFDs + "=8", envListenFDNames + "=reg:tcp:udp:conn:unix:gram:twice:twice"}

	// Each op with the start of what it must report. Ops run in order in
	// one child; a rejected file stays unclaimed for the ops after it.
	tests := []struct{ op, want string }{
		{"listener reg tcp", `error: fdpass: inherited fd 3 ("reg") is not a listening tcp socket: not a socket`},
		{"packet reg udp", "error: fdpass: inherited fd 3 (\"reg\") is not a udp socket: not a socket"},
		{"file reg", "ok fd=3"},
		{"packet tcp udp", "error: fdpass: inherited fd 4 (\"tcp\") is not a udp socket: socket of type stream"},
		{"listener tcp unix", "error: fdpass: inherited fd 4 (\"tcp\") is not a listening unix socket: socket of family inet"},
		{"listener tcp unixpacket", "error: fdpass: inherited fd 4 "},
		{"listener tcp tcp", "ok tcp"},
		{"listener udp tcp", "error: fdpass: inherited fd 5 (\"udp\") is not a listening tcp socket: socket of type datagram"},
		{"listener udp udp", "error: fdpass: \"udp\" is a datagram network: use PacketConn"},
		{"packet udp tcp", "error: fdpass: \"tcp\" is a stream network: use Listener"},
		{"packet udp unixgram", "error: fdpass: inherited fd 5 (\"udp\") is not a unixgram socket: socket of family inet"},
		{"packet udp udp4", "ok udp"},
		{"listener conn tcp", "error: fdpass: inherited fd 6 (\"conn\") is not a listening tcp socket: socket that is not listening"},
		{"file conn", "ok fd=6"},
		{"listener unix tcp", "error: fdpass: inherited fd 7 (\"unix\") is not a listening tcp socket: socket of family unix"},
		{"packet unix unixgram", "error: fdpass: inherited fd 7 (\"unix\") is not a unixgram socket: socket of type stream"},
		{"listener unix unix", "ok unix"},
		{"packet gram udp", "error: fdpass: inherited fd 8 (\"gram\") is not a udp socket: socket of family unix"},
		{"listener gram unix", "error: fdpass: inherited fd 8 "},
		{"packet gram unixgram", "ok unixgram"},
		{"listener nosuch tcp", "NotFound: fdpass: no such inherited file: \"nosuch\""},
		{"listener tcp tcp", "NotFound"},
		{"listener tcp sctp", "error: fdpass: unknown network \"sctp\""},
		{"names", "twice,twice"},
		{"listener twice tcp", "ok tcp"},
		{"listener twice tcp", "error: fdpass: inherited fd 10 "},
		{"packet twice udp", "ok udp"},
		{"names", ""},
		{"unclaimed", ""},
	}
	var ops []string
	for _, tt := range tests {
		ops = append(ops, tt.op)
	}
	r := runOps(t, files, env, ops...)
	require.Equal(t, "ok", r["inherit"])
	for i, tt := range tests {
		key := fmt.Sprintf("%d %s", i, tt.op)
		t.Run(key, func(t *testing.T) {
			got, ok := r[key]
			require.True(t, ok, "no report for %q", key)
			if tt.want == "" {
				assert.Equal(t, "", got)
				return
			}
			assert.True(t, strings.HasPrefix(got, tt.want), "got  %q\nwant %q...", got, tt.want)
		})
	}
}

func TestInheritMissingFD(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()

	t.Run("after the last passed", func(t *testing.T) {
		// The passed socket is non-blocking: adopting it registers it
		// with the runtime's poller, which takes the lowest free
		// descriptor numbers for itself. fd 4 must still be reported
		// missing, not mistaken for the poller's descriptor.
		r := runOps(t, []*os.File{mustDup(t, ln.(syscall.Conn), "a")},
			[]string{envListenFDs + "=3", envListenFDNames + "=a:b:c"}, "names")
		assert.True(t, strings.HasPrefix(r["inherit"], "Malformed: "), r["inherit"])
		assert.Contains(t, r["inherit"], `descriptor 4 ("b") is not open`)
		assert.Contains(t, r["inherit"], "bad file descriptor")
		assert.Equal(t, "", r["env"], "variables not unset")
	})
	t.Run("first missing", func(t *testing.T) {
		r := runOps(t, []*os.File{nil, mustDup(t, ln.(syscall.Conn), "b")},
			[]string{envListenFDs + "=2", envListenFDNames + "=a:b"}, "names")
		assert.Contains(t, r["inherit"], `descriptor 3 ("a") is not open`)
	})
}

func TestInheritEnvironment(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	f := mustDup(t, ln.(syscall.Conn), "web")

	t.Run("malformed", func(t *testing.T) {
		r := runOps(t, []*os.File{f}, []string{envListenFDs + "=1x", envListenFDNames + "=web"})
		assert.True(t, strings.HasPrefix(r["inherit"], "Malformed: "), r["inherit"])
		assert.Contains(t, r["inherit"], `LISTEN_FDS="1x"`)
		assert.Equal(t, "", r["env"], "variables not unset after an error")
	})
	t.Run("for another process", func(t *testing.T) {
		r := runOps(t, []*os.File{f}, []string{envListenPID + "=1", envListenFDs + "=1", envListenFDNames + "=web"},
			"names", "listener web tcp", "unclaimed", "closed 3")
		assert.Equal(t, "ok", r["inherit"])
		assert.Equal(t, "", r["env"])
		assert.Equal(t, "", r["0 names"])
		assert.True(t, strings.HasPrefix(r["1 listener web tcp"], "NotFound"), r["1 listener web tcp"])
		assert.Equal(t, "false", r["3 closed 3"], "a descriptor meant for another process was closed")
	})
	t.Run("socket activation without names", func(t *testing.T) {
		r := runOps(t, []*os.File{f}, []string{envListenFDs + "=1"}, "names", "listener unknown tcp")
		assert.Equal(t, "ok", r["inherit"])
		assert.Equal(t, "unknown", r["0 names"])
		assert.Equal(t, "ok tcp", r["1 listener unknown tcp"])
	})
	t.Run("none", func(t *testing.T) {
		r := runOps(t, nil, nil, "names", "unclaimed", "listener web tcp")
		assert.Equal(t, "ok", r["inherit"])
		assert.Equal(t, "", r["0 names"])
		assert.True(t, strings.HasPrefix(r["2 listener web tcp"], "NotFound"))
	})
}

func TestCloseUnclaimed(t *testing.T) {
	dir := shortTempDir(t)
	sockPath := filepath.Join(dir, "s")
	tcpLn, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer tcpLn.Close()
	unixLn, err := net.Listen("unix", sockPath)
	require.NoError(t, err)
	defer unixLn.Close()
	pr, pw, err := os.Pipe()
	require.NoError(t, err)
	defer pr.Close()
	defer pw.Close()

	r := runOps(t, []*os.File{
		mustDup(t, tcpLn.(syscall.Conn), "web"),   // 3
		mustDup(t, unixLn.(syscall.Conn), "sock"), // 4
		mustDup(t, pr, "cfg"),                     // 5
		mustDup(t, pw, "ctl"),                     // 6
	}, []string{envListenFDs + "=4", envListenFDNames + "=web:sock:cfg:ctl"},
		"listener web tcp", "unclaimed", "closed 4", "closed 5", "closed 6",
		"names", "unclaimed", "listener sock unix", "file cfg", "file ctl")
	assert.Equal(t, "ok", r["inherit"])
	assert.Equal(t, "ok tcp", r["0 listener web tcp"])
	assert.Equal(t, "sock,cfg,ctl", r["1 unclaimed"])
	assert.Equal(t, "true", r["2 closed 4"])
	assert.Equal(t, "true", r["3 closed 5"])
	assert.Equal(t, "true", r["4 closed 6"])
	assert.Equal(t, "", r["5 names"])
	assert.Equal(t, "", r["6 unclaimed"], "CloseUnclaimed twice")
	assert.True(t, strings.HasPrefix(r["7 listener sock unix"], "NotFound"), r["7 listener sock unix"])
	assert.True(t, strings.HasPrefix(r["8 file cfg"], "NotFound"), r["8 file cfg"])
	assert.True(t, strings.HasPrefix(r["9 file ctl"], "NotFound"), r["9 file ctl"])

	// The unclaimed unix listener's path is still there and still ours.
	_, err = os.Stat(sockPath)
	require.NoError(t, err, "CloseUnclaimed unlinked the unix socket path")
	c, err := net.DialTimeout("unix", sockPath, 5*time.Second)
	require.NoError(t, err)
	c.Close()
	unixLn.(*net.UnixListener).SetDeadline(time.Now().Add(5 * time.Second))
	c, err = unixLn.Accept()
	require.NoError(t, err)
	c.Close()
}
