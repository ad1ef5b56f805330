//go:build unix

package fdpass

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/handoff-go/handoff/internal/fds"
)

// firstFD is the descriptor number of the first passed file.
const firstFD = 3

// dup duplicates the descriptor behind c as a raw close-on-exec one.
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

// Inherited is the set of files a process was started with. Each file can
// be taken once; what nobody takes is closed by [Inherited.CloseUnclaimed].
// Its methods are safe for concurrent use.
type Inherited struct {
	mu     sync.Mutex
	files  []*entry            // in descriptor order
	byName map[string][]*entry // unclaimed entries per name
	carry  fds.Carriers        // how sockets are adopted without wrapping them
}

type entry struct {
	name  string
	fd    int
	taken bool     // handed to a caller or closed
	file  *os.File // fd wrapped, once a take wrapped it and put it back
}

// claim marks e taken and wraps its descriptor.
func (e *entry) claim() *os.File {
	e.taken = true
	return e.wrap()
}

// wrap returns fd as an *os.File, the one made before if a take put it
// back.
func (e *entry) wrap() *os.File {
	if f := e.file; f != nil {
		e.file = nil
		return f
	}
	return os.NewFile(uintptr(e.fd), e.name)
}

// close closes the descriptor.
func (e *entry) close() {
	if f := e.file; f != nil {
		e.file = nil
		f.Close()
		return
	}
	unix.Close(e.fd)
}

// Inherit reads the variables of systemd's socket activation
// (LISTEN_FDS, LISTEN_FDNAMES, LISTEN_PID) from the environment, unsets
// them, and adopts the descriptors they describe, from fd 3: each must be
// open, and each is marked close-on-exec so that programs this process
// starts do not inherit it. Variables whose LISTEN_PID names another
// process are ignored, as systemd specifies; without variables the result
// is empty. Malformed variables, or a descriptor that is not open, give
// an error wrapping [ErrMalformed] and adopt nothing. Call it once, early.
func Inherit() (*Inherited, error) {
	names, err := parseEnv(os.LookupEnv, os.Getpid())
	for _, k := range []string{envListenFDs, envListenFDNames, envListenPID} {
		os.Unsetenv(k)
	}
	if err != nil {
		return nil, err
	}
	// Check every descriptor before wrapping any in an *os.File: wrapping
	// a non-blocking socket starts the runtime's poller, whose epoll and
	// wake-up descriptors take the lowest free numbers — exactly the ones
	// a parent named but did not pass, which would then be adopted (and
	// later closed) as if they were ours.
	if bad, err := markInherited(firstFD, len(names)); bad >= 0 {
		// Adopt nothing: close what was passed, and only that.
		for i := range names {
			if _, err := unix.FcntlInt(uintptr(firstFD+i), unix.F_GETFD, 0); err == nil {
				unix.Close(firstFD + i)
			}
		}
		return nil, fmt.Errorf("%w: descriptor %d (%q) is not open: %w", ErrMalformed, firstFD+bad, names[bad], err)
	}
	return inherited(firstFD, names), nil
}

// inherited returns the Inherited of the descriptors from first on, one
// per name, proved open. Files are wrapped in an *os.File only when
// taken: wrapping registers a non-blocking descriptor with the poller,
// which is most of the cost of adopting a thousand descriptors nobody may
// ask for.
func inherited(first int, names []string) *Inherited {
	in := &Inherited{byName: make(map[string][]*entry, len(names)), files: make([]*entry, len(names))}
	// One allocation for the entries and one for the lists of one entry
	// that most names have, not one each.
	entries := make([]entry, len(names))
	lists := make([]*entry, len(names))
	for i, name := range names {
		e := &entries[i]
		*e = entry{name: name, fd: first + i}
		in.files[i] = e
		if list := in.byName[name]; list != nil {
			in.byName[name] = append(list, e)
		} else {
			lists[i] = e
			in.byName[name] = lists[i : i+1 : i+1]
		}
	}
	return in
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

// Listener takes the inherited listening socket named name. network is one
// of tcp, tcp4, tcp6, unix or unixpacket; the socket must be a listening
// socket of that family, or the error says what it is instead and the
// file stays unclaimed. [ErrNotFound] if no unclaimed file has the name.
func (in *Inherited) Listener(name, network string) (net.Listener, error) {
	return takeSocket(in, name, network, true, net.FileListener)
}

// PacketConn takes the inherited datagram socket named name, as Listener
// does. network is one of udp, udp4, udp6 or unixgram.
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
		if !e.taken && want.check(e.fd, e.name) == nil && fds.BoundTo(e.fd, addr) {
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

// markEach proves that the n descriptors from first on are open and marks
// them close-on-exec, one fcntl each (EBADF if one is not open). It
// returns the index of the first that is not open, with why; -1 if all are.
func markEach(first, n int) (int, error) {
	bad, why := -1, error(nil)
	for i := range n {
		if _, err := unix.FcntlInt(uintptr(first+i), unix.F_SETFD, unix.FD_CLOEXEC); err != nil && bad < 0 {
			bad, why = i, os.NewSyscallError("fcntl", err)
		}
	}
	return bad, why
}

// takeSocket takes the socket named name after checking it is of the kind
// network and listen ask for, and adopts it with the net package.
//
// The common case is made cheap, as a process may take a thousand: the
// file is claimed, adopted through the carrier (never wrapped itself),
// and the result checked against the kind from what adopting learned (its
// type and address) and one SO_ACCEPTCONN. Anything else puts the file
// back unclaimed and runs the full check, whose error says what the
// socket is instead.
func takeSocket[T any](in *Inherited, name, network string, listen bool, adopt func(*os.File) (T, error)) (T, error) {
	var zero T
	want, err := kindOf(network, listen)
	if err != nil {
		return zero, err
	}
	e, err := in.claimNamed(name)
	if err != nil {
		return zero, err
	}
	if e.file == nil { // never wrapped: the common case
		if v, err := fds.Adopt(&in.carry, e.fd, adopt); err == nil && want.matches(any(v)) {
			unix.Close(e.fd) // adopt made its own copy
			return v, nil
		} else if err == nil {
			if c, ok := any(v).(io.Closer); ok {
				c.Close()
			}
		}
	}
	f := e.wrap()
	v, err := adopt(f)
	if err == nil && want.matches(any(v)) {
		f.Close() // adopt made its own copy
		return v, nil
	}
	if err == nil {
		if c, ok := any(v).(io.Closer); ok {
			c.Close() // its copy; the file is still open
		}
	}
	// Slow path: back unclaimed, as it was, and the full check says why.
	if cerr := want.check(e.fd, name); cerr != nil {
		in.unclaim(e, f)
		return zero, cerr
	}
	if err != nil {
		in.unclaim(e, f)
		return zero, fmt.Errorf("fdpass: adopt %q: %w", name, err)
	}
	// The full check passed where the quick one did not: adopt again.
	defer f.Close()
	v, err = adopt(f)
	if err != nil {
		return zero, fmt.Errorf("fdpass: adopt %q: %w", name, err)
	}
	return v, nil
}

// claimNamed marks the first unclaimed file named name taken.
func (in *Inherited) claimNamed(name string) (*entry, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	list := in.byName[name]
	if len(list) == 0 {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	e := list[0]
	in.byName[name] = list[1:]
	e.taken = true
	return e, nil
}

// unclaim puts e back, first among its namesakes, with f, its
// descriptor wrapped.
func (in *Inherited) unclaim(e *entry, f *os.File) {
	in.mu.Lock()
	defer in.mu.Unlock()
	e.file, e.taken = f, false
	in.byName[e.name] = append([]*entry{e}, in.byName[e.name]...)
}

// CloseUnclaimed closes every file not yet taken and returns their
// names. Unix socket paths are left in place. On Linux, once a socket has
// been taken, two descriptors of /dev/null are open to adopt sockets with
// (two for each adoption that ran at the same time as another);
// CloseUnclaimed closes them too, after which nothing can be taken.
func (in *Inherited) CloseUnclaimed() []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	var names []string
	closeEntry := func(e *entry) {
		if !e.taken {
			e.taken = true
			e.close()
			names = append(names, e.name)
		}
	}
	for _, e := range in.files {
		closeEntry(e)
	}
	clear(in.byName)
	in.carry.Close() // nothing is taken from now on
	return names
}

// sockKind is what a caller expects an inherited descriptor to be.
type sockKind struct {
	network  string
	typ      int   // SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET
	families []int // acceptable address families
	listen   bool
}

// The families a socket of each network may have; shared, never changed.
var (
	inetFamilies = []int{unix.AF_INET, unix.AF_INET6}
	unixFamilies = []int{unix.AF_UNIX}
)

// kindOf is called for every socket taken, a thousand at a start: it
// allocates nothing.
func kindOf(network string, listen bool) (sockKind, error) {
	k := sockKind{network: network, listen: listen}
	switch network {
	case "tcp", "tcp4", "tcp6":
		k.typ, k.families = unix.SOCK_STREAM, inetFamilies
	case "unix":
		k.typ, k.families = unix.SOCK_STREAM, unixFamilies
	case "unixpacket":
		k.typ, k.families = unix.SOCK_SEQPACKET, unixFamilies
	case "udp", "udp4", "udp6":
		k.typ, k.families = unix.SOCK_DGRAM, inetFamilies
	case "unixgram":
		k.typ, k.families = unix.SOCK_DGRAM, unixFamilies
	default:
		return k, fmt.Errorf("fdpass: unknown network %q", network)
	}
	if listen != (k.typ != unix.SOCK_DGRAM) {
		if listen {
			return k, fmt.Errorf("fdpass: %q is a datagram network: use PacketConn", network)
		}
		return k, fmt.Errorf("fdpass: %q is a stream network: use Listener", network)
	}
	return k, nil
}

// String describes the kind, for an error: "listening tcp socket".
func (k sockKind) String() string {
	if k.listen {
		return "listening " + k.network + " socket"
	}
	return k.network + " socket"
}

// matches reports whether v, adopted by the net package, is a socket of
// kind k: the type and family from its address, and for a listener that
// it listens.
func (k sockKind) matches(v any) bool {
	var addr net.Addr
	var raw syscall.Conn
	switch c := v.(type) {
	case *net.TCPListener:
		addr, raw = c.Addr(), c
	case *net.UnixListener:
		addr, raw = c.Addr(), c
	case *net.UDPConn:
		addr, raw = c.LocalAddr(), c
	case *net.UnixConn:
		addr, raw = c.LocalAddr(), c
	default:
		return false
	}
	var typ, fam int
	switch a := addr.(type) {
	case *net.TCPAddr:
		typ, fam = unix.SOCK_STREAM, unix.AF_INET
	case *net.UDPAddr:
		typ, fam = unix.SOCK_DGRAM, unix.AF_INET
	case *net.UnixAddr:
		fam = unix.AF_UNIX
		switch a.Net {
		case "unix":
			typ = unix.SOCK_STREAM
		case "unixpacket":
			typ = unix.SOCK_SEQPACKET
		case "unixgram":
			typ = unix.SOCK_DGRAM
		default:
			return false
		}
	default:
		return false
	}
	if typ != k.typ || (fam == unix.AF_INET) != (k.families[0] == unix.AF_INET) {
		return false
	}
	if !k.listen {
		return true
	}
	rc, err := raw.SyscallConn()
	if err != nil {
		return false
	}
	acc := 0
	if err := rc.Control(func(fd uintptr) {
		acc, err = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	}); err != nil {
		return false
	}
	return err == nil && acc != 0
}

func (k sockKind) check(fd int, name string) error {
	fail := func(err error) error {
		return fmt.Errorf("fdpass: inherited fd %d (%q) is not a %v: %w", fd, name, k, err)
	}
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
