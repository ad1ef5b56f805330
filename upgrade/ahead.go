package upgrade

import (
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"syscall"

	"github.com/handoff-go/handoff/fdpass"
	"github.com/handoff-go/handoff/internal/fds"
)

// A new generation handed many sockets adopts them ahead, on the other
// CPUs, while the program starts and calls Listen. Adopting a socket is a
// dozen system calls (net.FileListener's copy, type, addresses, poller;
// the checks; closing the original), about 12 µs on a cloud VM, so
// taking a thousand one after the other is most of a new generation's
// start. The workers take them from the last handed over backwards; Listen
// asks for them in the program's own order, most often the same, and
// adopts one itself if no worker has begun it: the two meet in the middle.
// A worker's failure is not kept: Listen takes that socket itself, and its
// error says what is wrong.
const (
	aheadMin        = 32 // fewer sockets are adopted by Listen alone
	aheadMaxWorkers = 3
)

type aheadState int

const (
	aheadPending aheadState = iota // not begun
	aheadRunning                   // a worker adopts it
	aheadDone                      // a worker adopted it, or failed to
	aheadClaimed                   // Listen or the end took it
)

type aheadSlot struct {
	name  string
	state aheadState
	v     io.Closer // the listener or packet conn; nil if adopting failed
}

// ahead is the sockets being adopted ahead; nil if none are.
type ahead struct {
	mu    sync.Mutex
	slots map[string]*aheadSlot
	order []aheadSlot // as handed over
	next  int         // the last of order a worker may begin, counting down
	// running counts the slots aheadRunning; settled is signaled when one
	// is no longer.
	running int
	settled *sync.Cond
	// paused counts the searches by address running: while it is not 0
	// no worker begins a socket (resume is signaled when it drops to 0).
	paused int
	resume *sync.Cond
	wg     sync.WaitGroup
	// adopted counts the sockets the workers adopted.
	adopted int
}

// sockets is what ahead adopts from: an *fdpass.Inherited.
type sockets interface {
	Names() []string
	Listener(name, network string) (net.Listener, error)
	PacketConn(name, network string) (net.PacketConn, error)
}

var _ sockets = (*fdpass.Inherited)(nil)

// adoptAhead starts adopting, from in, the sockets handed over under
// handoff's names (network/address) if there are enough of them and
// another CPU to do it on; nil otherwise.
func adoptAhead(in sockets) *ahead {
	workers := min(runtime.GOMAXPROCS(0)-1, aheadMaxWorkers)
	if workers < 1 {
		return nil
	}
	names := in.Names()
	if len(names) < aheadMin {
		return nil
	}
	// A thousand slots are made in New, before any worker begins: in one
	// allocation, the map sized at once.
	a := &ahead{slots: make(map[string]*aheadSlot, len(names)), order: make([]aheadSlot, 0, len(names))}
	a.resume, a.settled = sync.NewCond(&a.mu), sync.NewCond(&a.mu)
	for _, name := range names {
		network, _, _ := strings.Cut(name, "/")
		if (!streamNetwork(network) && !datagramNetwork(network)) || a.slots[name] != nil {
			continue
		}
		a.order = append(a.order, aheadSlot{name: name})
		a.slots[name] = &a.order[len(a.order)-1]
	}
	if len(a.order) < aheadMin {
		return nil
	}
	a.next = len(a.order) - 1
	for range workers {
		a.wg.Add(1)
		go a.work(in)
	}
	return a
}

func (a *ahead) work(in sockets) {
	defer a.wg.Done()
	for {
		a.mu.Lock()
		for a.paused > 0 && a.next >= 0 {
			a.resume.Wait()
		}
		for a.next >= 0 && a.order[a.next].state != aheadPending {
			a.next--
		}
		if a.next < 0 {
			a.mu.Unlock()
			return
		}
		s := &a.order[a.next]
		a.next--
		s.state = aheadRunning
		a.running++
		a.mu.Unlock()

		network, _, _ := strings.Cut(s.name, "/")
		var v io.Closer
		if streamNetwork(network) {
			if ln, err := in.Listener(s.name, network); err == nil {
				v = ln
			}
		} else if pc, err := in.PacketConn(s.name, network); err == nil {
			v = pc
		}
		a.mu.Lock()
		s.v, s.state = v, aheadDone
		if v != nil {
			a.adopted++
		}
		a.running--
		a.settled.Broadcast() // cheap when nobody waits, as most often
		a.mu.Unlock()
	}
}

// size is the number of sockets being adopted ahead: as many names are
// expected from Listen and ListenPacket.
func (a *ahead) size() int {
	if a == nil {
		return 0
	}
	return len(a.order)
}

// take returns the socket adopted ahead under name, waiting for the
// worker adopting it; false if there is none, the caller then taking it
// from the Inherited itself.
func (a *ahead) take(name string) (io.Closer, bool) {
	if a == nil {
		return nil, false
	}
	a.mu.Lock()
	s := a.slots[name]
	if s == nil || s.state == aheadClaimed {
		a.mu.Unlock()
		return nil, false
	}
	for s.state == aheadRunning {
		a.settled.Wait()
	}
	state, v := s.state, s.v
	s.state, s.v = aheadClaimed, nil
	a.mu.Unlock()
	if state == aheadPending {
		return nil, false // not begun: the caller is as quick
	}
	return v, v != nil
}

// pause lets no worker begin another socket until unpause, and waits
// for those at work: Listen's fallback by address then finds what they
// adopted among the slots, and what they had not begun in the Inherited,
// whose search by address must not race with a worker taking the same
// socket by name. The workers go on afterwards.
func (a *ahead) pause() {
	a.mu.Lock()
	a.paused++
	for a.running > 0 {
		a.settled.Wait()
	}
	a.mu.Unlock()
}

func (a *ahead) unpause() {
	a.mu.Lock()
	a.paused--
	if a.paused == 0 {
		a.resume.Broadcast()
	}
	a.mu.Unlock()
}

// takeBound returns a socket adopted ahead that is bound to addr, for
// Listen's fallback by address (a name the program spells differently
// from its previous build); false if there is none. Call it paused.
func (a *ahead) takeBound(network, addr string) (io.Closer, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i := range a.order {
		s := &a.order[i]
		slotNetwork, _, _ := strings.Cut(s.name, "/")
		if s.state != aheadDone || s.v == nil || networkClass(slotNetwork) != networkClass(network) {
			continue
		}
		sc, ok := s.v.(syscall.Conn)
		if !ok {
			continue
		}
		rc, err := sc.SyscallConn()
		if err != nil {
			continue
		}
		bound := false
		if rc.Control(func(fd uintptr) { bound = fds.BoundTo(int(fd), addr) }) != nil || !bound {
			continue
		}
		v := s.v
		s.state, s.v = aheadClaimed, nil
		return v, true
	}
	return nil, false
}

// stop lets no worker begin another socket and waits for those at work.
func (a *ahead) stop() {
	a.mu.Lock()
	a.next = -1
	a.resume.Broadcast() // a paused worker has nothing left to begin
	a.mu.Unlock()
	a.wg.Wait()
}

// closeRest stops the workers and closes what they adopted that nobody
// took, returning its names; what they had not begun is the Inherited's
// to close.
func (a *ahead) closeRest() []string {
	if a == nil {
		return nil
	}
	a.stop()
	a.mu.Lock()
	defer a.mu.Unlock()
	var names []string
	for i := range a.order {
		s := &a.order[i]
		if s.state == aheadDone && s.v != nil {
			s.v.Close()
			names = append(names, s.name)
		}
		if s.state == aheadDone {
			s.state, s.v = aheadClaimed, nil
		}
	}
	return names
}

// inheritAhead returns take preceded by what a adopted under the name.
func inheritAhead[T any](a *ahead, take func(name, network string) (T, error)) func(name, network string) (T, error) {
	return func(name, network string) (T, error) {
		return takeAhead(a.take, name, func() (T, error) { return take(name, network) })
	}
}

// inheritAtAhead returns takeAt preceded by what a adopted bound to addr,
// the workers paused for both.
func inheritAtAhead[T any](a *ahead, takeAt func(network, addr string) (T, error)) func(network, addr string) (T, error) {
	return func(network, addr string) (T, error) {
		if a == nil {
			return takeAt(network, addr)
		}
		a.pause()
		defer a.unpause()
		return takeAhead(func(string) (io.Closer, bool) { return a.takeBound(network, addr) }, addr, func() (T, error) { return takeAt(network, addr) })
	}
}

func takeAhead[T any](take func(string) (io.Closer, bool), key string, otherwise func() (T, error)) (T, error) {
	c, ok := take(key)
	if !ok {
		return otherwise()
	}
	v, ok := c.(T)
	if !ok { // the name's network decides what is adopted: never
		c.Close()
		var zero T
		return zero, fmt.Errorf("upgrade: %s was adopted as a %T", key, c)
	}
	return v, nil
}

// networkClass is what a socket of network must be to serve for another
// network's: its protocol, whatever its address family.
func networkClass(network string) string {
	switch network {
	case "tcp", "tcp4", "tcp6":
		return "tcp"
	case "udp", "udp4", "udp6":
		return "udp"
	}
	return network
}

func streamNetwork(network string) bool {
	switch network {
	case "tcp", "tcp4", "tcp6", "unix", "unixpacket":
		return true
	}
	return false
}

func datagramNetwork(network string) bool {
	switch network {
	case "udp", "udp4", "udp6", "unixgram":
		return true
	}
	return false
}
