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
	adopted map[string]int     // by name: how many times Listener or PacketConn ran
	made    map[string]*closer // by name: what the last of them returned
}

// closer records its Close.
type closer struct{ closed bool }

func (c *closer) Close() error { c.closed = true; return nil }

type fakeListener struct {
	net.Listener
	*closer
}

func (l fakeListener) Close() error { return l.closer.Close() }

type fakePacketConn struct {
	net.PacketConn
	*closer
}

func (c fakePacketConn) Close() error { return c.closer.Close() }

func (f *fakeSockets) adopt(name string) (*closer, error) {
	if ch := f.entered[name]; ch != nil {
		close(ch)
	}
	if ch := f.block[name]; ch != nil {
		<-ch
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.adopted[name]++
	if f.fail[name] {
		return nil, errors.New("not a socket")
	}
	c := &closer{}
	f.made[name] = c
	return c, nil
}

func (f *fakeSockets) Names() []string { return f.names }

func (f *fakeSockets) Listener(name, network string) (net.Listener, error) {
	c, err := f.adopt(name)
	if err != nil {
		return nil, err
	}
	return fakeListener{closer: c}, nil
}

func (f *fakeSockets) PacketConn(name, network string) (net.PacketConn, error) {
	c, err := f.adopt(name)
	if err != nil {
		return nil, err
	}
	return fakePacketConn{closer: c}, nil
}

func newFakeSockets(n int) *fakeSockets {
	f := &fakeSockets{block: map[string]chan struct{}{}, entered: map[string]chan struct{}{}, fail: map[string]bool{}, adopted: map[string]int{}, made: map[string]*closer{}}
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

	a.mu.Lock()
	for a.slots[failing].state != aheadDone {
		a.settled.Wait()
	}
	a.mu.Unlock()
	_, ok = a.take(failing)
	assert.False(t, ok, "failed ahead: the caller takes it and learns why")

	a.wg.Wait() // every socket begun and done
	closed := a.closeRest()
	assert.NotContains(t, closed, failing, "nothing was adopted, nothing to close")
	assert.NotContains(t, closed, first)
	assert.NotContains(t, closed, last)
	assert.Contains(t, closed, "udp/127.0.0.1%3A53")
	assert.Len(t, closed, aheadMin+2, "the rest, closed and named")
	for _, n := range closed {
		assert.True(t, f.made[n].closed, "closed: %s", n)
	}
	assert.False(t, f.made[last].closed, "taken, so not closed: %s", last)
	for _, n := range f.names {
		want := 1
		if n == first || n == "file/lock" || n == "control/%2Frun%2Fapp.sock" {
			want = 0 // the caller's, or not a socket of Listen's
		}
		assert.Equal(t, want, f.adopted[n], "adopted by workers: %s", n)
	}
}

// TestAheadStops: Ready's closeRest lets no worker begin another socket,
// waits for those at work and closes what they adopted; the sockets not
// begun are left to the Inherited (which closes them without adopting).
func TestAheadStops(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	f := newFakeSockets(aheadMin)
	gate := make(chan struct{})
	var begun []chan struct{}
	for i, n := range f.names {
		f.block[n] = gate
		if i >= len(f.names)-aheadMaxWorkers { // the workers begin from the last
			ch := make(chan struct{})
			f.entered[n] = ch
			begun = append(begun, ch)
		}
	}
	a := adoptAhead(f)
	require.NotNil(t, a)
	for _, ch := range begun {
		<-ch
	}
	done := make(chan []string)
	go func() { done <- a.closeRest() }()
	require.Eventually(t, func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return a.next == -1
	}, 5*time.Second, time.Millisecond, "closeRest stops the workers")
	select {
	case <-done:
		t.Fatal("closeRest did not wait for the workers at work")
	default:
	}
	close(gate)
	closed := <-done
	assert.Len(t, closed, aheadMaxWorkers, "the sockets the workers had begun, closed")
	f.mu.Lock()
	defer f.mu.Unlock()
	assert.Len(t, f.adopted, aheadMaxWorkers, "no other adopted")
}

// TestAheadPausesForSearch: Listen's fallback by address waits for the
// workers at work, runs the Inherited's search while no worker begins
// another socket, and the workers go on afterwards: every socket is
// adopted, by them, once.
func TestAheadPausesForSearch(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	f := newFakeSockets(aheadMin)
	gate := make(chan struct{})
	var begun []chan struct{}
	for i, n := range f.names {
		if i >= len(f.names)-aheadMaxWorkers { // the first the workers begin
			f.block[n] = gate
			ch := make(chan struct{})
			f.entered[n] = ch
			begun = append(begun, ch)
		}
	}
	a := adoptAhead(f)
	require.NotNil(t, a)
	for _, ch := range begun {
		<-ch
	}
	adopted := func() int {
		f.mu.Lock()
		defer f.mu.Unlock()
		n := 0
		for _, c := range f.adopted {
			n += c
		}
		return n
	}
	searched := make(chan int)
	search := func(network, addr string) (net.Listener, error) {
		n := adopted()
		time.Sleep(20 * time.Millisecond) // a worker that went on would adopt meanwhile
		if m := adopted(); m != n {
			t.Errorf("%d sockets adopted during the search", m-n)
		}
		searched <- n
		return nil, errors.New("none bound there")
	}
	errc := make(chan error)
	go func() {
		_, err := inheritAtAhead(a, search)("tcp", "127.0.0.1:9")
		errc <- err
	}()
	require.Eventually(t, func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return a.paused == 1
	}, 5*time.Second, time.Millisecond, "the fallback pauses the workers")
	select {
	case <-searched:
		t.Fatal("the search ran while workers were at work")
	case <-time.After(50 * time.Millisecond):
	}
	close(gate)
	assert.Equal(t, aheadMaxWorkers, <-searched, "the search ran once the workers at work were done, and no other began")
	assert.EqualError(t, <-errc, "none bound there", "the search's answer")
	a.wg.Wait() // the workers went on to the end
	assert.Equal(t, aheadMin, adopted(), "every socket adopted, by the workers")
	assert.Len(t, a.closeRest(), aheadMin, "nobody asked for them: closed at the end")
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
