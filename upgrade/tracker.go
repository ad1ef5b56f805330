package upgrade

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
)

// tracker counts in-flight work and open connections, so that a drain can
// wait for them with a deadline and cut what is left. The zero value is
// ready to use; it is safe for concurrent use.
//
// Counting takes no lock: every request a server handles is counted in
// and out, and a mutex shared by all of them is taken by every CPU twice
// a request. The lock guards the connections kept for closeConns and the
// channel a wait waits on, made by the first wait that finds work in
// flight (one that timed out leaves it to the next).
type tracker struct {
	n       atomic.Int64
	waiting atomic.Int32 // waits under way: the release that ends n wakes them
	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	zero    chan struct{} // a wait's; closed, and forgotten, when n drops to 0
}

// add counts one unit of work, and c, if not nil, as a connection that
// closeConns may cut; release it exactly once.
func (t *tracker) add(c net.Conn) {
	t.n.Add(1)
	if c != nil {
		t.mu.Lock()
		if t.conns == nil {
			t.conns = make(map[net.Conn]struct{})
		}
		t.conns[c] = struct{}{}
		t.mu.Unlock()
	}
}

func (t *tracker) release(c net.Conn) {
	if c != nil {
		t.mu.Lock()
		delete(t.conns, c)
		t.mu.Unlock()
	}
	// A wait counts itself in waiting before it reads n, and this reads
	// waiting after n: one of the two sees the other.
	if t.n.Add(-1) == 0 && t.waiting.Load() > 0 {
		t.mu.Lock()
		// n again, under the lock: work added since the decrement may
		// have met a wait that made a new channel, which must not be
		// closed before that work is released.
		if t.zero != nil && t.n.Load() == 0 {
			close(t.zero)
			t.zero = nil
		}
		t.mu.Unlock()
	}
}

// hold counts one unit of work and returns its release, which may be
// called more than once.
func (t *tracker) hold() (release func()) {
	t.add(nil)
	var once sync.Once
	return func() { once.Do(func() { t.release(nil) }) }
}

// active returns the number of units and connections in flight.
func (t *tracker) active() int { return int(t.n.Load()) }

// wait blocks until nothing is in flight, or returns ctx.Err().
func (t *tracker) wait(ctx context.Context) error {
	t.waiting.Add(1)
	defer t.waiting.Add(-1)
	t.mu.Lock()
	if t.n.Load() == 0 {
		t.mu.Unlock()
		return nil
	}
	if t.zero == nil {
		t.zero = make(chan struct{})
	}
	zero := t.zero
	t.mu.Unlock()
	select {
	case <-zero:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// closeConns closes every tracked connection still open and returns how
// many it closed. Their releases still come as usual.
func (t *tracker) closeConns() int {
	t.mu.Lock()
	conns := make([]net.Conn, 0, len(t.conns))
	for c := range t.conns {
		conns = append(conns, c)
	}
	t.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
	return len(conns)
}
