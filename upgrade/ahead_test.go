package upgrade

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeSockets hands out fakeListeners; a name in block waits for its
// channel to close first, a name in fail fails.
type fakeSockets struct {
	names   []string
	block   map[string]chan struct{}
	entered map[string]chan struct{} // closed when the name's adoption begins
	fail    map[string]bool

	mu      sync.Mutex
	adopted map[string]int // by name: how many times Listener or PacketConn ran
}

type fakeListener struct {
	net.Listener
	name   string
	closed bool
}

func (l *fakeListener) Close() error { l.closed = true; return nil }

type fakePacketConn struct {
	net.PacketConn
	name string
}

func (c *fakePacketConn) Close() error { return nil }

func (f *fakeSockets) adopt(name string) error {
	if ch := f.entered[name]; ch != nil {
		close(ch)
	}
	if ch := f.block[name]; ch != nil {
		<-ch
	}
	f.mu.Lock()
	f.adopted[name]++
	f.mu.Unlock()
	if f.fail[name] {
		return errors.New("not a socket")
	}
	return nil
}

func (f *fakeSockets) Names() []string { return f.names }

func (f *fakeSockets) Listener(name, network string) (net.Listener, error) {
	if err := f.adopt(name); err != nil {
		return nil, err
	}
	return &fakeListener{name: name}, nil
}

func (f *fakeSockets) PacketConn(name, network string) (net.PacketConn, error) {
	if err := f.adopt(name); err != nil {
		return nil, err
	}
	return &fakePacketConn{name: name}, nil
}

func newFakeSockets(n int) *fakeSockets {
	f := &fakeSockets{block: map[string]chan struct{}{}, entered: map[string]chan struct{}{}, fail: map[string]bool{}, adopted: map[string]int{}}
	for i := range n {
		f.names = append(f.names, fmt.Sprintf("tcp/127.0.0.1%%3A%d", 1000+i))
	}
	return f
}

// TestAheadTakes: what a worker adopted is Listen's, after waiting for
// the worker if it is still at it; what no worker has begun, or a worker
// failed to adopt, Listen takes itself (and says why it failed); every
// socket is adopted once; what nobody asked for is closed at the end.
func TestAheadTakes(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	f := newFakeSockets(aheadMin + 4)
	f.names = append(f.names, "udp/127.0.0.1%3A53", "file/lock", "control/%2Frun%2Fapp.sock")
	first, last, failing := f.names[0], f.names[aheadMin+3], f.names[aheadMin+2]
	release, entered := make(chan struct{}), make(chan struct{})
	f.block[last], f.entered[last] = release, entered
	f.fail[failing] = true
	gate := make(chan struct{})
	for _, n := range f.names[:aheadMin+2] {
		f.block[n] = gate // no other adoption ends before the test says so
	}

	a := adoptAhead(f)
	require.NotNil(t, a)
	assert.Len(t, a.order, aheadMin+5, "sockets only, stream and datagram; not files or the control socket")

	// The first one: no worker begins it (they work backwards, and wait at
	// the gate), so Listen takes it itself.
	_, ok := a.take(first)
	assert.False(t, ok, "not begun: the caller takes it")

	// The last one: a worker is at it; take waits for it.
	<-entered
	got := make(chan bool)
	go func() {
		_, ok := a.take(last)
		got <- ok
	}()
	select {
	case <-got:
		t.Fatal("take did not wait for the worker")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	assert.True(t, <-got, "adopted by a worker, waited for")
	close(gate)

	closed := a.closeRest()
	_, ok = a.take(failing)
	assert.False(t, ok, "failed ahead: the caller takes it and learns why")
	assert.NotContains(t, closed, failing, "nothing was adopted, nothing to close")
	assert.NotContains(t, closed, first)
	assert.NotContains(t, closed, last)
	assert.Contains(t, closed, "udp/127.0.0.1%3A53")
	assert.Len(t, closed, aheadMin+2, "the rest, closed and named")
	for _, n := range f.names {
		want := 1
		if n == first || n == "file/lock" || n == "control/%2Frun%2Fapp.sock" {
			want = 0 // the caller's, or not a socket of Listen's
		}
		assert.Equal(t, want, f.adopted[n], "adopted by workers: %s", n)
	}
}

// TestAheadOff: too few sockets, or one CPU, and Listen adopts alone.
func TestAheadOff(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	assert.Nil(t, adoptAhead(newFakeSockets(aheadMin-1)))
	var a *ahead
	_, ok := a.take("tcp/x")
	assert.False(t, ok)
	assert.Empty(t, a.closeRest())
	runtime.GOMAXPROCS(1)
	assert.Nil(t, adoptAhead(newFakeSockets(aheadMin)), "no other CPU")
}
