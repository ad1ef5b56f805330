//go:build unix

package fdpass

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// DupFD duplicates the descriptor behind c as a raw close-on-exec
// descriptor, for [syscall.StartProcess]'s ProcAttr.Files. Unlike [Dup] it
// does not wrap the copy in an [os.File], which would register it with the
// runtime's poller: that costs about 3 µs a descriptor, a third of the
// time of handing over a thousand. The caller closes it with
// [syscall.Close].
func DupFD(c syscall.Conn) (int, error) {
	fd, err := dup(c)
	if err != nil {
		return -1, fmt.Errorf("fdpass: dup: %w", err)
	}
	return fd, nil
}

func dup(c syscall.Conn) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return -1, err
	}
	nfd := -1
	var dupErr error
	if err := rc.Control(func(fd uintptr) {
		nfd, dupErr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return -1, err
	}
	if dupErr != nil {
		return -1, os.NewSyscallError("fcntl", dupErr)
	}
	return nfd, nil
}

// Dup duplicates the descriptor behind c (a listener, a packet conn or an
// [os.File]) into a new close-on-exec [os.File] named name. The result can
// go into [os/exec.Cmd.ExtraFiles] without the trap of
// [net.TCPListener.File]: its Fd method leaves the shared socket in
// non-blocking mode, so the caller's own c keeps working. The caller closes
// the returned file once the child has started.
func Dup(c syscall.Conn, name string) (*os.File, error) {
	fd, err := dup(c)
	if err != nil {
		return nil, fmt.Errorf("fdpass: dup %q: %w", name, err)
	}
	return os.NewFile(uintptr(fd), name), nil
}

// Inherited is the set of files a process was started with. Its methods
// are safe for concurrent use. Each file can be taken once; what nobody
// takes is closed by [Inherited.CloseUnclaimed].
type Inherited struct {
	mu        sync.Mutex
	files     []*entry            // in descriptor order
	byName    map[string][]*entry // unclaimed entries per name
	control   map[string]*entry
	meta      map[string]string
	handoff   bool
	tableflip bool
}

type entry struct {
	name  string
	fd    int
	taken bool // handed to a caller or closed
}

// claim marks e taken and wraps its descriptor.
func (e *entry) claim() *os.File {
	e.taken = true
	return os.NewFile(uintptr(e.fd), e.name)
}

// Inherit reads the variables described in the package documentation from
// the environment, unsets them, and adopts the descriptors they describe:
// each must be open, and each is marked close-on-exec so that programs this
// process starts do not inherit it. Without variables the result is empty.
func Inherit() (*Inherited, error) {
	if _, ok := os.LookupEnv(EnvTableflip); ok {
		os.Unsetenv(EnvTableflip)
		if !systemdFor(os.Getpid()) && tableflipPipes() {
			m, err := parseTableflip(fdReader(FirstFD + 1))
			if err != nil {
				return nil, err
			}
			return adopt(m)
		}
	}
	m, err := parseEnv(os.LookupEnv, os.Getpid())
	for _, k := range []string{EnvListenFDs, EnvListenFDNames, EnvListenPID, EnvHandoff} {
		os.Unsetenv(k)
	}
	if err != nil {
		return nil, err
	}
	return adopt(m)
}

func adopt(m *manifest) (*Inherited, error) {
	in := &Inherited{
		byName:    make(map[string][]*entry),
		control:   make(map[string]*entry),
		meta:      m.meta,
		handoff:   m.handoff,
		tableflip: m.tableflip,
	}
	names, isControl := m.fds()
	// Check every descriptor before wrapping any in an *os.File: wrapping
	// a non-blocking socket starts the runtime's poller, whose epoll and
	// wake-up descriptors take the lowest free numbers — exactly the ones
	// a manifest names but the parent did not pass, which would then be
	// adopted (and later closed) as if they were ours.
	var firstErr error
	open := make([]bool, len(names))
	for i, name := range names {
		fd := FirstFD + i
		// One fcntl both proves the descriptor is open (EBADF otherwise)
		// and marks it close-on-exec.
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC); err != nil {
			if firstErr == nil {
				firstErr = &FDError{FD: fd, Name: name, Want: "open descriptor", Err: os.NewSyscallError("fcntl", err)}
			}
			continue
		}
		open[i] = true
	}
	if firstErr != nil {
		for i, ok := range open {
			if ok {
				unix.Close(FirstFD + i)
			}
		}
		return nil, firstErr
	}
	// Files are wrapped in an *os.File only when taken: wrapping registers
	// a non-blocking descriptor with the poller, which is most of the cost
	// of adopting a thousand descriptors nobody may ask for.
	for i, name := range names {
		e := &entry{name: name, fd: FirstFD + i}
		if isControl[i] {
			in.control[name] = e
		} else {
			in.files = append(in.files, e)
			in.byName[name] = append(in.byName[name], e)
		}
	}
	return in, nil
}

// FromTableflip reports whether the files came from a parent built with
// github.com/cloudflare/tableflip (see [EnvTableflip]).
func (in *Inherited) FromTableflip() bool { return in.tableflip }

// systemdFor reports whether systemd's variables are meant for the
// process pid: a tableflip process started by socket activation may pass
// its own stale LISTEN_FDS on to the process it starts.
func systemdFor(pid int) bool {
	if _, ok := os.LookupEnv(EnvListenFDs); !ok {
		return false
	}
	v, ok := os.LookupEnv(EnvListenPID)
	return !ok || v == strconv.Itoa(pid)
}

// tableflipPipes reports whether fds 3 and 4 are pipes, as a tableflip
// parent passes them. tableflip never unsets its variable, so any program
// a tableflip process starts inherits it, with whatever fds 3 and 4 are.
func tableflipPipes() bool {
	for _, fd := range []int{FirstFD, FirstFD + 1} {
		var st unix.Stat_t
		if unix.Fstat(fd, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
			return false
		}
	}
	return true
}

// fdReader reads a descriptor without wrapping it in an *os.File, which
// would take ownership of it. A tableflip parent's pipe is non-blocking (Go
// makes its pipes so) and its names may not be written yet: Read waits for
// them with poll, up to tableflipWait.
type fdReader int

// tableflipWait bounds the wait for a tableflip parent's names; tableflip
// itself gives up on a child after a minute by default.
const tableflipWait = time.Minute

func (r fdReader) Read(p []byte) (int, error) {
	deadline := time.Now().Add(tableflipWait)
	for {
		n, err := unix.Read(int(r), p)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			left := time.Until(deadline)
			if left <= 0 {
				return 0, fmt.Errorf("nothing from the parent within %v", tableflipWait)
			}
			fds := []unix.PollFd{{Fd: int32(r), Events: unix.POLLIN}}
			if _, err := unix.Poll(fds, int(left/time.Millisecond)+1); err != nil && err != unix.EINTR {
				return 0, os.NewSyscallError("poll", err)
			}
			continue
		case err != nil:
			return 0, os.NewSyscallError("read", err)
		case n == 0 && len(p) > 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

// FromHandoff reports whether the files came from a handoff parent (the
// HANDOFF variable was present), as opposed to plain socket activation.
func (in *Inherited) FromHandoff() bool { return in.handoff }

// Meta returns a key=value pair carried in the HANDOFF variable.
func (in *Inherited) Meta(key string) (string, bool) {
	v, ok := in.meta[key]
	return v, ok
}

// Names returns the names of the files not yet taken, in descriptor order.
func (in *Inherited) Names() []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	var names []string
	for _, e := range in.files {
		if !e.taken {
			names = append(names, e.name)
		}
	}
	return names
}

// take removes and returns the first unclaimed file named name after check
// accepts it. A file check rejects stays unclaimed.
func (in *Inherited) take(name string, check func(fd int) error) (*os.File, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	list := in.byName[name]
	if len(list) == 0 {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	e := list[0]
	if check != nil {
		if err := check(e.fd); err != nil {
			return nil, err
		}
	}
	in.byName[name] = list[1:]
	return e.claim(), nil
}

// File takes the inherited file named name, of any kind.
func (in *Inherited) File(name string) (*os.File, error) {
	return in.take(name, nil)
}

// ControlNames returns the names of the control files not yet taken,
// sorted.
func (in *Inherited) ControlNames() []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	var names []string
	for name, e := range in.control {
		if !e.taken {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// Control takes the control file named name.
func (in *Inherited) Control(name string) (*os.File, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	e := in.control[name]
	if e == nil || e.taken {
		return nil, fmt.Errorf("%w: control %q", ErrNotFound, name)
	}
	return e.claim(), nil
}

// Listener takes the inherited listening socket named name. network is one
// of tcp, tcp4, tcp6, unix or unixpacket; the socket must be a listening
// socket of that family, or an [*FDError] says what it is instead and the
// file stays unclaimed.
func (in *Inherited) Listener(name, network string) (net.Listener, error) {
	return takeSocket(in, name, network, true, net.FileListener)
}

// PacketConn takes the inherited datagram socket named name. network is
// one of udp, udp4, udp6 or unixgram.
func (in *Inherited) PacketConn(name, network string) (net.PacketConn, error) {
	return takeSocket(in, name, network, false, net.FilePacketConn)
}

// ListenerAt takes an unclaimed inherited listening socket of network
// that is bound to addr, whatever its name: the sockets of systemd socket
// activation carry the unit's names, not the program's. An empty or
// unspecified host matches only a socket bound to the unspecified address;
// a port of 0 matches nothing. [ErrNotFound] if no socket matches.
func (in *Inherited) ListenerAt(network, addr string) (net.Listener, error) {
	return takeSocketAt(in, network, addr, true, net.FileListener)
}

// PacketConnAt is ListenerAt for datagram sockets.
func (in *Inherited) PacketConnAt(network, addr string) (net.PacketConn, error) {
	return takeSocketAt(in, network, addr, false, net.FilePacketConn)
}

func takeSocketAt[T any](in *Inherited, network, addr string, listen bool, adopt func(*os.File) (T, error)) (T, error) {
	var zero T
	want, err := kindOf(network, listen)
	if err != nil {
		return zero, err
	}
	in.mu.Lock()
	var name string
	for _, e := range in.files {
		if !e.taken && want.check(e.fd, e.name) == nil && boundTo(e.fd, network, addr) {
			name = e.name
			// Put it first among its namesakes, for take below.
			list := in.byName[name]
			for i, o := range list {
				if o == e {
					list[0], list[i] = list[i], list[0]
				}
			}
			break
		}
	}
	in.mu.Unlock()
	if name == "" {
		return zero, fmt.Errorf("%w: no %s socket bound to %s", ErrNotFound, network, addr)
	}
	return takeSocket(in, name, network, listen, adopt)
}

// boundTo reports whether the socket fd is bound to addr.
func boundTo(fd int, network, addr string) bool {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return false
	}
	if u, ok := sa.(*unix.SockaddrUnix); ok {
		return u.Name == addr
	}
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port == 0 {
		return false
	}
	var ip net.IP
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		if a.Port != port {
			return false
		}
		ip = net.IP(a.Addr[:])
	case *unix.SockaddrInet6:
		if a.Port != port {
			return false
		}
		ip = net.IP(a.Addr[:])
	default:
		return false
	}
	want := net.ParseIP(host)
	if host == "" || want != nil && want.IsUnspecified() {
		return ip.IsUnspecified()
	}
	if want != nil {
		return ip.Equal(want)
	}
	ips, _ := net.LookupIP(host) // a name such as localhost
	for _, w := range ips {
		if ip.Equal(w) {
			return true
		}
	}
	return false
}

// takeSocket takes the socket named name after checking it is of the kind
// network and listen ask for, and adopts it with the net package.
func takeSocket[T any](in *Inherited, name, network string, listen bool, adopt func(*os.File) (T, error)) (T, error) {
	var zero T
	want, err := kindOf(network, listen)
	if err != nil {
		return zero, err
	}
	f, err := in.take(name, func(fd int) error { return want.check(fd, name) })
	if err != nil {
		return zero, err
	}
	defer f.Close() // adopt made its own copy
	v, err := adopt(f)
	if err != nil {
		return zero, fmt.Errorf("fdpass: adopt %q: %w", name, err)
	}
	return v, nil
}

// CloseUnclaimed closes every file and control file not yet taken and
// returns their names. Unix socket paths are left in place.
func (in *Inherited) CloseUnclaimed() []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	var names []string
	closeEntry := func(e *entry) {
		if !e.taken {
			e.taken = true
			unix.Close(e.fd)
			names = append(names, e.name)
		}
	}
	for _, e := range in.files {
		closeEntry(e)
	}
	for _, e := range in.control {
		closeEntry(e)
	}
	clear(in.byName)
	return names
}

// sockKind is what a caller expects an inherited descriptor to be.
type sockKind struct {
	desc     string
	typ      int   // SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET
	families []int // acceptable address families
	listen   bool
}

func kindOf(network string, listen bool) (sockKind, error) {
	inet := []int{unix.AF_INET, unix.AF_INET6}
	var k sockKind
	switch network {
	case "tcp", "tcp4", "tcp6":
		k = sockKind{typ: unix.SOCK_STREAM, families: inet}
	case "unix":
		k = sockKind{typ: unix.SOCK_STREAM, families: []int{unix.AF_UNIX}}
	case "unixpacket":
		k = sockKind{typ: unix.SOCK_SEQPACKET, families: []int{unix.AF_UNIX}}
	case "udp", "udp4", "udp6":
		k = sockKind{typ: unix.SOCK_DGRAM, families: inet}
	case "unixgram":
		k = sockKind{typ: unix.SOCK_DGRAM, families: []int{unix.AF_UNIX}}
	default:
		return k, fmt.Errorf("fdpass: unknown network %q", network)
	}
	if listen != (k.typ != unix.SOCK_DGRAM) {
		if listen {
			return k, fmt.Errorf("fdpass: %q is a datagram network: use PacketConn", network)
		}
		return k, fmt.Errorf("fdpass: %q is a stream network: use Listener", network)
	}
	k.listen = listen
	k.desc = network + " socket"
	if listen {
		k.desc = "listening " + k.desc
	}
	return k, nil
}

func (k sockKind) check(fd int, name string) error {
	fail := func(err error) error { return &FDError{FD: fd, Name: name, Want: k.desc, Err: err} }
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		if errors.Is(err, unix.ENOTSOCK) {
			return fail(errors.New("not a socket"))
		}
		return fail(os.NewSyscallError("getsockopt", err))
	}
	if typ != k.typ {
		return fail(fmt.Errorf("socket of type %s", typeName(typ)))
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return fail(os.NewSyscallError("getsockname", err))
	}
	fam := familyOf(sa)
	ok := false
	for _, f := range k.families {
		ok = ok || f == fam
	}
	if !ok {
		return fail(fmt.Errorf("socket of family %s", familyName(fam)))
	}
	if k.listen {
		acc, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
		if err != nil {
			return fail(os.NewSyscallError("getsockopt", err))
		}
		if acc == 0 {
			return fail(errors.New("socket that is not listening"))
		}
	}
	return nil
}

func familyOf(sa unix.Sockaddr) int {
	switch sa.(type) {
	case *unix.SockaddrInet4:
		return unix.AF_INET
	case *unix.SockaddrInet6:
		return unix.AF_INET6
	case *unix.SockaddrUnix:
		return unix.AF_UNIX
	}
	return -1
}

func familyName(f int) string {
	switch f {
	case unix.AF_INET:
		return "inet"
	case unix.AF_INET6:
		return "inet6"
	case unix.AF_UNIX:
		return "unix"
	}
	return "other"
}

func typeName(t int) string {
	switch t {
	case unix.SOCK_STREAM:
		return "stream"
	case unix.SOCK_DGRAM:
		return "datagram"
	case unix.SOCK_SEQPACKET:
		return "seqpacket"
	}
	return fmt.Sprintf("%d", t)
}
