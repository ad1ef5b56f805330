//go:build unix

package fds

import (
	"errors"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// A carrier is how a socket is adopted by the net package without
// wrapping its descriptor in an *os.File of its own. net.FileListener,
// net.FilePacketConn and net.FileConn take an *os.File and adopt a copy of
// its descriptor; wrapping a non-blocking socket would register it with
// the runtime's poller, and closing the wrapper deregister it: two
// epoll_ctl calls, a third of the cost of adopting a socket. The carrier
// is a file that is not registered, opened on /dev/null (blocking), whose
// descriptor is pointed at the socket (dup3) for the time of the
// adoption, and at /dev/null again after it, so that it never keeps a
// socket open. Linux only (carrierWorks); elsewhere Adopt says there is
// none and the caller wraps the descriptor.
type carrier struct {
	file *os.File // pointed at the socket being adopted
	null *os.File // a second /dev/null, to point file's descriptor back at
}

// Carriers are the carriers of one user (an Inherited, a receiver of
// connections): one per adoption running at once, made when first needed
// and kept for the next until Close. The zero value is ready to use.
type Carriers struct {
	mu     sync.Mutex
	closed bool       // by Close: no more are made
	broken bool       // one could not be made: none is used
	free   []*carrier // not in use
}

// errNoCarrier is Adopt's error where no carrier can be used.
var errNoCarrier = errors.New("no carrier")

// Adopt adopts the socket fd through a carrier of p, with adopt (such as
// net.FileConn), which makes its own copy: fd stays the caller's to close.
// An error if no carrier can be used, the socket then being as it was.
func Adopt[T any](p *Carriers, fd int, adopt func(*os.File) (T, error)) (T, error) {
	var zero T
	c := p.get()
	if c == nil {
		return zero, errNoCarrier
	}
	// Neither file is pollable (opened blocking), so Fd changes nothing.
	cfd := int(c.file.Fd())
	if err := dupOnto(fd, cfd); err != nil {
		p.put(c)
		return zero, err
	}
	v, err := adopt(c.file)
	if rerr := dupOnto(int(c.null.Fd()), cfd); rerr != nil {
		c.close() // it would keep the socket open: give it up
		return v, err
	}
	p.put(c)
	return v, err
}

// get returns a carrier not in use, made if need be; nil where none can
// be made, or after Close.
func (p *Carriers) get() *carrier {
	p.mu.Lock()
	if n := len(p.free); n > 0 {
		c := p.free[n-1]
		p.free = p.free[:n-1]
		p.mu.Unlock()
		return c
	}
	unusable := p.closed || p.broken || !carrierWorks
	p.mu.Unlock()
	if unusable {
		return nil
	}
	c, ok := openCarrier()
	if !ok {
		p.mu.Lock()
		p.broken = true
		p.mu.Unlock()
	}
	return c
}

// put gives c back; it is closed if the carriers are.
func (p *Carriers) put(c *carrier) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.close()
		return
	}
	p.free = append(p.free, c)
}

// Close closes the carriers not in use, for good; one in use is closed
// when given back. Adopt fails from then on.
func (p *Carriers) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, c := range p.free {
		c.close()
	}
	p.free = nil
}

// Idle returns the descriptors of the carriers not in use, for tests.
func (p *Carriers) Idle() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	fds := make([]int, len(p.free))
	for i, c := range p.free {
		fds[i] = int(c.file.Fd())
	}
	return fds
}

// openCarrier makes a carrier, where it can be made. Its files are made
// with os.NewFile from descriptors opened blocking, which it never
// registers with the poller (os.Open would try to).
func openCarrier() (*carrier, bool) {
	var fds [2]int
	for i := range fds {
		fd, err := unix.Open(os.DevNull, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			if i == 1 {
				unix.Close(fds[0])
			}
			return nil, false
		}
		fds[i] = fd
	}
	return &carrier{file: os.NewFile(uintptr(fds[0]), os.DevNull), null: os.NewFile(uintptr(fds[1]), os.DevNull)}, true
}

func (c *carrier) close() {
	c.file.Close()
	c.null.Close()
}
