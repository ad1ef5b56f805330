package upgrade

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Moving idle HTTP/1.1 connections to the new generation.
//
// Serve wraps the listeners of this Upgrader it serves an *http.Server on,
// so that it sees every byte net/http reads from their connections and
// every state change. At the drain, a connection moves when it is provably
// between requests: net/http marked it idle (or it is new and sent
// nothing) and is blocked reading with its whole 4096-byte buffer free —
// it has consumed none of the next request. A read deadline in the past
// stops that read without consuming anything the kernel holds; the read
// returns a timeout, net/http closes the connection quietly, and the close
// passes the descriptor to the new generation instead. If the request
// arrives first, the read returns it and the connection stays: it is
// served here, keeps alive, and moves once it is idle again. The new
// generation serves a connection it was passed as one it accepted. Every
// other connection (TLS, HTTP/2, hijacked, one that keeps this generation
// busy with new requests past IdleGrace) drains as before.

// bufioSize is the size of net/http's connection read buffer: a read of
// exactly this many bytes while the connection is idle proves the buffer
// empty. Were it ever to change, nothing would move, and everything
// would drain as before.
const bufioSize = 4096

// errMoved is what a read returns when its connection is moved: a
// timeout, which net/http takes for a client that went quiet, and closes
// the connection without a word.
var errMoved error = &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}

// aLongTimeAgo is a deadline in the past.
var aLongTimeAgo = time.Unix(1, 0)

// moves is the moving of one Serve's HTTP connections.
type moves struct {
	u           *Upgrader
	log         *slog.Logger
	idleTimeout time.Duration // the server's, for a connection that arrives idle
	inject      *injectListener
	keys        map[string]*moveKey

	// drainStart is when the drain began, by clock; 0 before the drain.
	created    time.Time
	drainStart atomic.Int64
	// candidates counts the connections that may still move: open,
	// wrapped, on a key that moves, and not found unmovable.
	candidates tracker
	passing    tracker // moved connections not yet answered for
	// injected counts the connections queued on inject that Serve has
	// not taken yet (taken: its ConnState hook saw them new): the drain,
	// which counts HTTP connections from that hook, waits for them too.
	injected tracker
	// What became of the moved connections: taken by the new generation,
	// kept (it refused, or could not be asked), or given back because it
	// died in the middle of the move.
	moved, kept, lost atomic.Int64

	mu    sync.Mutex
	conns map[*movableConn]struct{}
}

// moveKey is the moving of one listener's connections.
type moveKey struct {
	name string
	// phase: 0 before the drain; deciding while the new generation is
	// asked; then moving or staying.
	phase  atomic.Int32
	target atomic.Pointer[passer]
}

const (
	phaseServing int32 = iota
	phaseDeciding
	phaseMoving
	phaseStaying
)

// newMoves prepares the moving for srv; the listeners wrap picks it up.
func (u *Upgrader) newMoves(srv *http.Server) *moves {
	idle := srv.IdleTimeout
	if idle == 0 {
		idle = srv.ReadTimeout
	}
	return &moves{u: u, log: u.log, idleTimeout: idle, keys: map[string]*moveKey{}, conns: map[*movableConn]struct{}{}, created: time.Now()}
}

// wrap returns ln wrapped if it is a stream listener of this Upgrader's:
// only those have a name the next generation knows them by.
func (m *moves) wrap(ln net.Listener) net.Listener {
	name := m.u.nameOf(ln)
	if name == "" {
		return ln
	}
	if m.inject == nil {
		m.inject = newInjectListener(ln.Addr())
	}
	k := &moveKey{name: name}
	m.keys[name] = k
	return &moveListener{Listener: ln, m: m, k: k}
}

// start serves, on srv, the connections the previous generation passes,
// and the ones a failed pass leaves here. Call it once serving.
func (m *moves) start(srv *http.Server) {
	if m.inject == nil {
		return
	}
	go srv.Serve(m.inject) // ends at Shutdown
	if r := m.u.receiver; r != nil {
		for name, k := range m.keys {
			r.register(name, func(c net.Conn, state []byte) bool {
				return m.injectConn(m.newConn(c, k, state, true, false))
			})
		}
	}
}

// stop refuses connections from the previous generation from now on:
// the server is about to shut down.
func (m *moves) stop() {
	if r := m.u.receiver; r != nil {
		for name := range m.keys {
			r.unregister(name)
		}
	}
}

// newConn wraps c, of key k; fresh says it arrives idle from elsewhere.
func (m *moves) newConn(c net.Conn, k *moveKey, carried []byte, fresh, unmovable bool) *movableConn {
	mc := &movableConn{Conn: c, m: m, k: k, state: http.StateNew, carried: carried, fresh: fresh, unmovable: unmovable}
	if fresh {
		mc.freshSince = time.Now()
	}
	m.mu.Lock()
	m.conns[mc] = struct{}{}
	m.mu.Unlock()
	if !unmovable {
		mc.counted = true
		m.candidates.add(nil)
	}
	return mc
}

// drainBegan records the start of the drain, from which responses keep
// connections that may move alive (for IdleGrace, to requests that came
// after it) while the new generation is asked whether it takes them.
func (m *moves) drainBegan() {
	m.drainStart.Store(m.clock())
	for _, k := range m.keys {
		k.phase.Store(phaseDeciding)
	}
}

// begin decides, at the drain, which keys move: those the new generation
// takes, asked until deadline. It moves their idle connections at once
// and reports whether any key moves.
func (m *moves) begin(deadline time.Time) bool {
	if len(m.keys) == 0 {
		return false
	}
	p := m.u.successorPasser()
	any := false
	for name, k := range m.keys {
		if p != nil && p.awaitTake(name, deadline) {
			k.target.Store(p)
			k.phase.Store(phaseMoving)
			any = true
		} else {
			k.phase.Store(phaseStaying)
		}
	}
	m.mu.Lock()
	all := make([]*movableConn, 0, len(m.conns))
	for c := range m.conns {
		all = append(all, c)
	}
	m.mu.Unlock()
	for _, c := range all {
		if c.k.phase.Load() == phaseMoving {
			c.steal()
		} else {
			c.setUnmovable()
		}
	}
	return any
}

// keepAlive reports whether a response on c, to a request that came
// before the drain began or not, should keep the connection alive during
// the drain rather than end it with "Connection: close": c may move once
// it is idle, unless it keeps bringing new requests past IdleGrace.
func (m *moves) keepAlive(c *movableConn, beforeDrain bool) bool {
	if c == nil {
		return false
	}
	switch c.k.phase.Load() {
	case phaseDeciding, phaseMoving:
	default:
		return false
	}
	if c.isUnmovable() {
		return false
	}
	return beforeDrain || time.Duration(m.clock()-m.drainStart.Load()) < m.u.opts.IdleGrace
}

// clock is the time in nanoseconds since m was made, plus one (so that
// it is never 0, which drainStart keeps for "not begun"), by the
// monotonic clock: a step of the wall clock changes nothing.
func (m *moves) clock() int64 { return int64(time.Since(m.created)) + 1 }

// waitMoved waits until no connection is left that may move.
func (m *moves) waitMoved(ctx context.Context) error { return m.candidates.wait(ctx) }

// waitPassed waits for the new generation's answers to the connections
// passed; what it refused is queued to be served here again by then
// (release waits for Serve to take it).
func (m *moves) waitPassed(ctx context.Context) { m.passing.wait(ctx) }

// injectConn queues c for Serve, counted in injected until Serve takes it
// (setState) or it closes; false if the listener is closed.
func (m *moves) injectConn(c *movableConn) bool {
	c.mu.Lock()
	c.queued = true
	c.mu.Unlock()
	m.injected.add(nil)
	if !m.inject.push(c) {
		c.mu.Lock()
		c.unqueueLocked()
		c.mu.Unlock()
		return false
	}
	return true
}

// closeFresh closes the connections that arrived idle and never spoke:
// net/http counts them as new, which Shutdown leaves for 5 seconds.
func (m *moves) closeFresh() {
	m.mu.Lock()
	var fresh []*movableConn
	for c := range m.conns {
		if c.isFresh() {
			fresh = append(fresh, c)
		}
	}
	m.mu.Unlock()
	for _, c := range fresh {
		c.Conn.Close() // net/http's read fails, and it closes the wrapper
	}
}

// closed is called once per connection when net/http closes it.
func (m *moves) closed(c *movableConn) {
	m.mu.Lock()
	delete(m.conns, c)
	m.mu.Unlock()
	c.uncount()
}

// pass passes a moved connection to the new generation, or, if that
// fails, serves it here again. It does not wait for the answer.
func (m *moves) pass(c *movableConn) {
	p := c.k.target.Load()
	serveHere := func(raw net.Conn) {
		if !m.injectConn(m.newConn(raw, c.k, nil, true, true)) {
			raw.Close()
		}
	}
	done := func(err error) {
		defer m.passing.release(nil)
		if err == nil {
			m.moved.Add(1)
			return
		}
		m.kept.Add(1)
		m.log.Debug("a connection could not move; serving it here", slog.Any("error", err))
		serveHere(c.Conn)
	}
	err := p.start(c.k.name, c.Conn, nil, m.u.opts.DrainTimeout, func(raw net.Conn) {
		m.lost.Add(1)
		serveHere(raw)
	}, done)
	if err != nil {
		done(err)
	}
}

// release lets go of the connections moved: the new generation has them.
// What it refused, or took and died with (even after its last answer), is
// served here again: release returns once Serve has taken all of it.
func (m *moves) release(ctx context.Context) {
	if p := m.u.successorPasser(); p != nil {
		p.release()
	}
	m.injected.wait(ctx)
}

// state follows net/http's view of a connection.
func (m *moves) state(c net.Conn, s http.ConnState) {
	if mc, ok := c.(*movableConn); ok {
		mc.setState(s)
	}
}

// moveListener is a listener of this Upgrader's whose connections may
// move.
type moveListener struct {
	net.Listener
	m *moves
	k *moveKey
}

func (l *moveListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return l.m.newConn(c, l.k, nil, false, false), nil
}

// movableConn is a connection served by net/http that may move.
type movableConn struct {
	net.Conn // *net.TCPConn or *net.UnixConn
	m        *moves
	k        *moveKey

	mu         sync.Mutex
	state      http.ConnState
	read       int64   // bytes read by net/http
	first      [3]byte // the first bytes: "PRI" is HTTP/2's preface
	unmovable  bool
	counted    bool // among m.candidates
	inRead     bool // net/http is blocked in Read
	readLen    int  // the length of that read
	stealing   bool // a past deadline was set to stop that read
	moved      bool // the read was stopped: the connection goes at Close
	carried    []byte
	fresh      bool      // arrived idle from elsewhere and has not spoken yet
	freshSince time.Time // when it arrived
	queued     bool      // on inject, not yet taken by Serve (moves.injected)
	want       time.Time // the read deadline net/http asked for
	wantAt     time.Time // when it asked
	closeOnce  sync.Once
}

// movableLocked reports whether a read of n bytes proves the connection
// between requests; c.mu is held.
func (c *movableConn) movableLocked(n int) bool {
	if c.unmovable || len(c.carried) > 0 || n != bufioSize {
		return false
	}
	switch c.state {
	case http.StateIdle:
		return true
	case http.StateNew:
		return c.read == 0
	}
	return false
}

// waitingLocked reports whether net/http waits for a request on c.
func (c *movableConn) waitingLocked() bool {
	return c.state == http.StateIdle || c.state == http.StateNew
}

func (c *movableConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	if len(c.carried) > 0 {
		n := copy(p, c.carried)
		c.carried = c.carried[n:]
		c.noteRead(p[:n])
		c.mu.Unlock()
		return n, nil
	}
	if c.moved {
		c.mu.Unlock()
		return 0, errMoved
	}
	if c.k.phase.Load() == phaseMoving && c.waitingLocked() && c.movableLocked(len(p)) {
		c.moved = true
		c.mu.Unlock()
		return 0, errMoved
	}
	c.inRead, c.readLen = true, len(p)
	c.mu.Unlock()

	n, err := c.Conn.Read(p)

	c.mu.Lock()
	defer c.mu.Unlock()
	c.inRead = false
	if c.stealing {
		c.stealing = false
		if n == 0 && isTimeout(err) {
			c.moved = true
			return 0, errMoved
		}
		// The request came first: it is served here, and the connection
		// stays until it is idle again.
		c.Conn.SetReadDeadline(c.appliedLocked())
	}
	c.noteRead(p[:n])
	return n, err
}

// noteRead records bytes net/http read; c.mu is held.
func (c *movableConn) noteRead(b []byte) {
	if len(b) == 0 {
		return
	}
	for i := 0; c.read+int64(i) < int64(len(c.first)) && i < len(b); i++ {
		c.first[c.read+int64(i)] = b[i]
	}
	c.read += int64(len(b))
	if c.read >= int64(len(c.first)) && string(c.first[:]) == "PRI" {
		c.setUnmovableLocked() // HTTP/2 in the clear: it never moves
	}
	if c.fresh {
		// It spoke: from now on the deadline net/http asked for runs,
		// counted from this first byte, as for a keep-alive request.
		c.fresh = false
		if c.want.IsZero() {
			c.Conn.SetReadDeadline(time.Time{})
		} else {
			c.Conn.SetReadDeadline(time.Now().Add(c.want.Sub(c.wantAt)))
		}
	}
}

// steal stops net/http's read if it proves the connection between
// requests. One in the middle of a request moves once it is answered, at
// net/http's next read.
func (c *movableConn) steal() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inRead && !c.stealing && !c.moved && c.movableLocked(c.readLen) {
		c.stealing = true
		c.Conn.SetReadDeadline(aLongTimeAgo)
	}
}

// appliedLocked is the read deadline the connection should have: the
// one net/http asked for, or, while it has not spoken since it arrived
// idle, the server's idle timeout from its arrival (net/http would
// otherwise give it only ReadHeaderTimeout, as to a new connection).
func (c *movableConn) appliedLocked() time.Time {
	if c.fresh {
		if c.m.idleTimeout > 0 {
			return c.freshSince.Add(c.m.idleTimeout)
		}
		return time.Time{}
	}
	return c.want
}

func (c *movableConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.want, c.wantAt = t, time.Now()
	if c.stealing {
		return nil // restored if the steal fails
	}
	return c.Conn.SetReadDeadline(c.appliedLocked())
}

func (c *movableConn) SetDeadline(t time.Time) error {
	if err := c.Conn.SetWriteDeadline(t); err != nil {
		return err
	}
	return c.SetReadDeadline(t)
}

// Close passes a moved connection on, and closes any other.
func (c *movableConn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		c.mu.Lock()
		moved := c.moved
		c.unqueueLocked() // closed while queued for Serve: inject's Close
		c.mu.Unlock()
		if moved {
			// Counted as passing before it stops counting as a
			// candidate: a drain that saw no candidate left must see
			// this pass, or it ends (and the process exits) before the
			// new generation has answered for the connection.
			c.m.passing.add(nil)
			c.m.closed(c)
			c.m.pass(c)
			return
		}
		c.m.closed(c)
		err = c.Conn.Close()
	})
	return err
}

// CloseWrite keeps net/http's lingering close for TCP and unix sockets.
func (c *movableConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// ReadFrom keeps the socket's sendfile and splice paths for responses.
func (c *movableConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

func (c *movableConn) setState(s http.ConnState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.state = s
	switch s {
	case http.StateNew:
		c.unqueueLocked() // Serve took it; the drain's own hook counted it first
	case http.StateHijacked:
		c.setUnmovableLocked()
	}
}

// unqueueLocked stops counting c as queued for Serve (moves.injected),
// once; c.mu is held.
func (c *movableConn) unqueueLocked() {
	if c.queued {
		c.queued = false
		c.m.injected.release(nil)
	}
}

func (c *movableConn) setUnmovable() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.setUnmovableLocked()
}

func (c *movableConn) setUnmovableLocked() {
	c.unmovable = true
	if c.counted {
		c.counted = false
		c.m.candidates.release(nil)
	}
}

func (c *movableConn) uncount() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.counted {
		c.counted = false
		c.m.candidates.release(nil)
	}
}

func (c *movableConn) isUnmovable() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.unmovable
}

func (c *movableConn) isFresh() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fresh
}

// unwrapConn returns the socket under c, for PassConn.
func (c *movableConn) unwrapConn() net.Conn { return c.Conn }

// isTimeout reports whether err is a deadline's.
func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// injectListener is where Serve receives connections that it did not
// accept: passed by the previous generation, or failed to pass on.
type injectListener struct {
	addr   net.Addr
	mu     sync.Mutex
	queue  []net.Conn
	ready  chan struct{} // has a token while the queue may be non-empty
	closed bool
	done   chan struct{}
}

func newInjectListener(addr net.Addr) *injectListener {
	return &injectListener{addr: addr, ready: make(chan struct{}, 1), done: make(chan struct{})}
}

// push queues c for Accept; false if the listener is closed.
func (l *injectListener) push(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.queue = append(l.queue, c)
	select {
	case l.ready <- struct{}{}:
	default:
	}
	return true
}

func (l *injectListener) Accept() (net.Conn, error) {
	for {
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			return nil, net.ErrClosed
		}
		if len(l.queue) > 0 {
			c := l.queue[0]
			l.queue[0] = nil
			l.queue = l.queue[1:]
			more := len(l.queue) > 0
			l.mu.Unlock()
			if more {
				select {
				case l.ready <- struct{}{}:
				default:
				}
			}
			return c, nil
		}
		l.mu.Unlock()
		select {
		case <-l.ready:
		case <-l.done:
		}
	}
}

// Close stops Accept; what is queued and not accepted is closed, as idle
// connections are when a server stops.
func (l *injectListener) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	close(l.done)
	for _, c := range l.queue {
		c.Close()
	}
	l.queue = nil
	return nil
}

func (l *injectListener) Addr() net.Addr { return l.addr }
