package upgrade

import (
	"context"
	"net"
	"sync"
)

// tracker counts in-flight work and open connections, so that a drain can
// wait for them with a deadline and cut what is left. The zero value is
// ready to use; it is safe for concurrent use.
type tracker struct {
	mu    sync.Mutex
	n     int
	conns map[net.Conn]struct{}
	zero  chan struct{} // closed when n drops to 0; nil while n == 0
}

// add counts one unit of work, and c, if not nil, as a connection that
// closeConns may cut; release it exactly once.
func (t *tracker) add(c net.Conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.n == 0 {
		t.zero = make(chan struct{})
	}
	t.n++
	if c != nil {
		if t.conns == nil {
			t.conns = make(map[net.Conn]struct{})
		}
		t.conns[c] = struct{}{}
	}
}

func (t *tracker) release(c net.Conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if c != nil {
		delete(t.conns, c)
	}
	t.n--
	if t.n == 0 {
		close(t.zero)
		t.zero = nil
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
func (t *tracker) active() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.n
}

// wait blocks until nothing is in flight, or returns ctx.Err().
func (t *tracker) wait(ctx context.Context) error {
	t.mu.Lock()
	zero := t.zero
	t.mu.Unlock()
	if zero == nil {
		return nil
	}
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
