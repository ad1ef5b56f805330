//go:build unix

package upgrade

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/handoff-go/handoff/internal/fds"
	"github.com/handoff-go/handoff/internal/wire"
)

// errRefused: the new generation was asked and refused this one.
var errRefused = errors.New("the new generation refused the connection")

// sendPatience bounds how long a message of connections waits to go into
// a connection channel that is full: the new generation reads nothing (it
// is frozen, stopped by a debugger, starved of CPU). A healthy one reads
// the next message within milliseconds of adopting the last. After that,
// nothing more is passed to it: what was not sent is served here again,
// instead of waiting out the drain for a child that may never read it.
const sendPatience = 2 * time.Second

// passWindow bounds the passes sent and not yet answered. The kernel
// queues about 6,000 connections in a connection channel nobody reads
// (93 full messages here), each stuck with a child that is frozen until
// it reads again; with the window, 256 at most are, and the rest are
// served here after sendPatience without an answer. A healthy child
// answers 8 at a time as it adopts them, which keeps the window moving.
const passWindow = 4 * wire.MaxBatch

// passer passes live connections to the child this generation started.
type passer struct {
	ch  *wire.ConnChannel
	log *slog.Logger

	mu      sync.Mutex
	taken   map[string]bool
	changed chan struct{} // closed, and replaced, when taken or closed change
	closed  bool          // the child's end is closed: an older build, or it exited
	// stalled: a send waited sendPatience for the child to read; nothing
	// more is sent, and what was not sent is served here again.
	stalled      bool
	sendPatience time.Duration
	// inflight counts the pending passes sending or sent, at most window;
	// answered counts the child's messages of answers (nothing else ends
	// a pass that says the child reads), so that the sender can tell a
	// child that reads slowly from one that reads nothing.
	inflight, window int
	answered         uint64
	nextID           uint64
	pending          map[uint64]*pendingPass // passes waiting for the child's answer
	queue            []queuedConn            // to send
	kick             chan struct{}           // has a token while queue may be non-empty
	done             chan struct{}           // closed once the child's end has closed
	// held are the connections the child took, whose descriptors this
	// generation keeps until release: if the child dies meanwhile (in the
	// middle of the move), each is given back to its lost func.
	held map[uint64]heldConn
	// handingBack counts a hand-back of held connections in progress
	// (broke, the child having died); release waits for it.
	handingBack sync.WaitGroup
}

// queuedConn is a connection waiting to be sent. Its descriptor is read
// as it is sent, with the conn pinned open (fds.Pin), not copied when it
// is queued: ten thousand connections queued at once held ten thousand
// copies, and ran the process out of descriptors.
type queuedConn struct {
	wire.PassedConn // FD set as it is sent
	conn            syscall.Conn
}

// pendingPass is a pass waiting for the child's answer. Nothing waits on
// it: the answer, or its patience running out, finishes it (settle), so
// that a move of ten thousand connections is not ten thousand goroutines,
// each with a stack grown in fresh memory, waiting on a timer of its own.
type pendingPass struct {
	id    uint64
	c     net.Conn
	lost  func(net.Conn)
	done  func(error)
	timer *time.Timer // patience
	// sending: taken from the queue, its send not yet over (sendBatch
	// settles it if the channel breaks, or its patience runs out,
	// meanwhile); sent: the child has it, or had it; expired: its patience
	// ran out while it was sent.
	sending, sent, expired bool
}

// heldConn is a passed connection kept until release.
type heldConn struct {
	c    net.Conn
	lost func(net.Conn)
}

func newPasser(ch *wire.ConnChannel, log *slog.Logger) *passer {
	p := &passer{ch: ch, log: log, taken: map[string]bool{}, changed: make(chan struct{}), sendPatience: sendPatience, window: passWindow,
		pending: map[uint64]*pendingPass{}, held: map[uint64]heldConn{},
		kick: make(chan struct{}, 1), done: make(chan struct{})}
	go p.read()
	go p.send()
	return p
}

// send sends what pass queues, as many connections in a message as fit
// and the window has room for. While the window is full, it waits for
// answers; when none has come for sendPatience, the child reads nothing
// and the passer stalls.
func (p *passer) send() {
	var waiting *time.Timer // runs while the window is full and passes wait
	var since uint64        // p.answered when it began
	defer func() {
		if waiting != nil {
			waiting.Stop()
		}
	}()
	for {
		var timeout <-chan time.Time
		if waiting != nil {
			timeout = waiting.C
		}
		select {
		case <-p.kick:
		case <-timeout:
			waiting = nil
			if p.stall(&since) {
				continue
			}
		case <-p.done:
			p.mu.Lock()
			p.queue = nil // their passes were answered false
			p.mu.Unlock()
			return
		}
		// Connections become ready to pass one by one, each as its
		// response goes out; yielding once lets those about to be queued
		// join this message. Without it, under load, 512 connections went
		// in up to 350 messages, each a round trip through the new
		// generation's answer, and its answers came 116–173 ms after the
		// drain began; with it, in 10–17 messages, 10–47 ms.
		runtime.Gosched()
		for {
			p.mu.Lock()
			var batch []wire.PassedConn
			var conns []syscall.Conn
			if !p.fullLocked() {
				for len(p.queue) > 0 && p.inflight < p.window && wire.Fits(batch, p.queue[0].State) {
					// A pass no longer pending gave up before it was sent,
					// and is served here: it must not reach the child too.
					if pp := p.pending[p.queue[0].ID]; pp != nil {
						pp.sending = true
						p.inflight++
						batch = append(batch, p.queue[0].PassedConn)
						conns = append(conns, p.queue[0].conn)
					}
					p.queue[0] = queuedConn{}
					p.queue = p.queue[1:]
				}
			}
			full := len(batch) == 0 && p.fullLocked()
			answered := p.answered
			p.mu.Unlock()
			if len(batch) > 0 {
				p.sendBatch(batch, conns)
				continue
			}
			switch {
			case !full:
				if waiting != nil {
					waiting.Stop()
					waiting = nil
				}
			case waiting == nil || answered != since:
				// Full: wait for answers, sendPatience from the last.
				if waiting != nil {
					waiting.Stop()
				}
				waiting, since = time.NewTimer(p.sendPatience), answered
			}
			break
		}
	}
}

// fullLocked reports whether passes wait for room in the window: for a
// whole message's, not 8 at a time as answers come. Passes that gave up
// before they were sent are dropped from the queue's head first, so as
// not to count as waiting. p.mu is held.
func (p *passer) fullLocked() bool {
	for len(p.queue) > 0 && p.pending[p.queue[0].ID] == nil {
		p.queue[0] = queuedConn{}
		p.queue = p.queue[1:]
	}
	return len(p.queue) > 0 && p.window-p.inflight < min(len(p.queue), wire.MaxBatch, p.window)
}

// sendBatch sends the connections of batch, whose conns are conns, in one
// message (it holds its own reference to each descriptor once sent). One
// closed before it is sent, by a pass that gave up waiting, is left out.
// What could not be sent is refused; what was sent waits for its answer,
// or, if the channel broke or its patience ran out while it was sent
// (broke and giveUp leave those to this send), is left to the child. A
// send the child does not make room for within sendPatience is not sent,
// and stalls the passer.
func (p *passer) sendBatch(batch []wire.PassedConn, conns []syscall.Conn) {
	for len(batch) > 0 {
		err := fds.Pin(conns, func(raw []int) error {
			for i, fd := range raw {
				batch[i].FD = fd
			}
			return p.ch.SendBy(wire.ConnMsg{Kind: wire.ConnConn, Conns: batch}, time.Now().Add(p.sendPatience))
		})
		var closed *fds.ClosedError
		if errors.As(err, &closed) {
			p.answer(batch[closed.Index:closed.Index+1], false)
			batch = slices.Delete(batch, closed.Index, closed.Index+1)
			conns = slices.Delete(conns, closed.Index, closed.Index+1)
			continue
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			p.answer(batch, false)
			p.stall(nil)
			return
		}
		if err != nil {
			p.log.Warn("could not pass connections to the new generation", slog.Any("error", err))
			p.answer(batch, false)
			return
		}
		p.mu.Lock()
		var left []*pendingPass
		for _, c := range batch {
			if pp := p.pending[c.ID]; pp != nil {
				pp.sending, pp.sent = false, true
				// Broke while this was sent: no answer comes. Or gave up
				// waiting while it was sent: the child has it.
				if p.closed || pp.expired {
					left = p.takePendingLocked(c.ID, left)
				}
			}
		}
		p.mu.Unlock()
		for _, pp := range left {
			p.leave(pp)
		}
		return
	}
}

// stall stops passing connections to a child that stopped reading them:
// what is queued, or comes later, is refused (served here); what was sent
// waits for its answer, as before, the channel staying open for it. With
// silentSince, only if the child has answered nothing since p.answered was
// that, and passes still wait for room. It reports whether it stalled.
func (p *passer) stall(silentSince *uint64) bool {
	p.mu.Lock()
	if p.stalled || p.closed || silentSince != nil && (p.answered != *silentSince || !p.fullLocked()) {
		p.mu.Unlock()
		return false
	}
	p.stalled = true
	var refused []*pendingPass
	for id, pp := range p.pending {
		if !pp.sent && !pp.sending {
			refused = p.takePendingLocked(id, refused)
		}
	}
	p.queue = nil
	p.signal()
	p.mu.Unlock()
	p.log.Warn("the new generation reads no more connections; serving the rest here",
		slog.Duration("waited", p.sendPatience), slog.Int("refused", len(refused)))
	for _, pp := range refused {
		p.settle(pp, false)
	}
	return true
}

// answer gives the passes of batch their answer.
func (p *passer) answer(batch []wire.PassedConn, took bool) {
	p.mu.Lock()
	answered := make([]*pendingPass, 0, len(batch))
	for _, c := range batch {
		answered = p.takePendingLocked(c.ID, answered)
	}
	p.mu.Unlock()
	for _, pp := range answered {
		p.settle(pp, took)
	}
}

// forgetLocked removes pp from pending, and from the window if it was
// in it; p.mu is held.
func (p *passer) forgetLocked(pp *pendingPass) {
	delete(p.pending, pp.id)
	if pp.sending || pp.sent {
		p.inflight--
	}
}

// takePendingLocked removes the pass id from pending, if it is still
// there, and appends it to to; p.mu is held.
func (p *passer) takePendingLocked(id uint64, to []*pendingPass) []*pendingPass {
	pp, ok := p.pending[id]
	if !ok {
		return to
	}
	p.forgetLocked(pp)
	pp.timer.Stop()
	return append(to, pp)
}

// settle finishes a pass the child answered: took says whether it took
// the connection. A connection taken is closed here at release, or, if
// the child's end closes first (it died in the middle of the move),
// handed to lost, if not nil. Called without p.mu.
func (p *passer) settle(pp *pendingPass, took bool) {
	if !took {
		pp.done(errRefused)
		return
	}
	p.mu.Lock()
	switch {
	case pp.lost == nil:
		p.mu.Unlock()
		pp.c.Close()
	case p.held == nil:
		// It took the connection and died before this end heard of it
		// again: the connection is this generation's once more.
		p.mu.Unlock()
		pp.lost(pp.c)
	default:
		p.held[pp.id] = heldConn{c: pp.c, lost: pp.lost}
		p.mu.Unlock()
	}
	pp.done(nil)
}

// read follows what the child says until its end closes.
func (p *passer) read() {
	for {
		m, err := p.ch.Recv()
		if err != nil {
			p.broke(err)
			return
		}
		for _, c := range m.Conns {
			closeFD(c.FD) // a child passes nothing
		}
		var answered []*pendingPass
		p.mu.Lock()
		switch m.Kind {
		case wire.ConnTake:
			p.taken[m.Key] = true
			p.signal()
		case wire.ConnAck, wire.ConnNack:
			// The child reads: even an answer for a pass given up on
			// says so.
			p.answered++
			answered = make([]*pendingPass, 0, len(m.IDs))
			for _, id := range m.IDs {
				answered = p.takePendingLocked(id, answered)
			}
		}
		p.mu.Unlock()
		if len(answered) > 0 {
			p.wake() // the window has room
		}
		for _, pp := range answered {
			p.settle(pp, m.Kind == wire.ConnAck)
		}
	}
}

// wake wakes the sender.
func (p *passer) wake() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// broke ends the passes when the channel ends with err. At its end (EOF,
// or this end closed) the child is gone, having exited or died: what it
// took, and what it was sent and did not answer for, is served here
// again. A message this build cannot read leaves a child that is alive
// and may be serving: what it took, or may have been sent, stays its own
// (ours is closed), lest two processes read one connection; only what was
// never sent is served here again.
func (p *passer) broke(err error) {
	gone := !errors.Is(err, wire.ErrConnMsg)
	switch {
	case gone && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed):
		p.log.Warn("connection channel to the new generation broke", slog.Any("error", err))
	case !gone:
		p.log.Warn("connection channel to the new generation broke; what it was sent is left to it", slog.Any("error", err))
	}
	p.mu.Lock()
	p.closed = true
	var refused, left []*pendingPass
	for id, pp := range p.pending {
		switch {
		case gone:
			refused = p.takePendingLocked(id, refused)
		case pp.sending:
			// Its send settles it: left if it went, refused if not.
		case pp.sent:
			left = p.takePendingLocked(id, left)
		default:
			refused = p.takePendingLocked(id, refused)
		}
	}
	var held map[uint64]heldConn
	if gone {
		held = p.held
		p.held = nil
		if len(held) > 0 {
			p.handingBack.Add(1) // release waits until they are served here
			defer p.handingBack.Done()
		}
	}
	p.signal()
	close(p.done)
	p.mu.Unlock()
	if !gone {
		p.ch.Close() // the child's receiver sees its end
	}
	// What it took first: settling the rest may end the drain, which waits
	// only for the passes, and what lost then hands to a server that has
	// stopped is closed.
	for _, h := range held {
		h.lost(h.c) // the child died with it: serve it here again
	}
	for _, pp := range refused {
		p.settle(pp, false)
	}
	for _, pp := range left {
		p.leave(pp)
	}
}

// signal wakes those waiting for a change; p.mu is held.
func (p *passer) signal() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// awaitTake reports whether the child takes connections of key, waiting
// for it to say so until deadline.
func (p *passer) awaitTake(key string, deadline time.Time) bool {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	for {
		p.mu.Lock()
		taken, closed, changed := p.taken[key], p.closed || p.stalled, p.changed
		p.mu.Unlock()
		switch {
		case closed:
			return false
		case taken:
			return true
		}
		select {
		case <-changed:
		case <-t.C:
			return false
		}
	}
}

// pass passes c, and state, to the child, and waits for its answer: nil
// once the child took it; otherwise c is still this generation's, open.
// What becomes of c after that, and of a child that does not answer, is
// start's.
func (p *passer) pass(key string, c net.Conn, state []byte, patience time.Duration, lost func(net.Conn)) error {
	res := make(chan error, 1)
	if err := p.start(key, c, state, patience, lost, func(err error) { res <- err }); err != nil {
		return err
	}
	return <-res
}

// start passes c, and state, to the child without waiting: done is called
// once with the outcome, nil once the child took it, otherwise an error
// and c is still this generation's, open. An error from start itself
// means nothing was begun (done is not called). A connection taken is
// closed here at release, or, if the child's end closes first (it died in
// the middle of the move), handed to lost, if not nil. A child that does
// not answer within patience (one that is alive but frozen) is left the
// connection, and done gets nil: it has it queued, and serving it here too
// could answer a request twice. done runs on the passer's goroutines (or a
// timer's): it must not block.
func (p *passer) start(key string, c net.Conn, state []byte, patience time.Duration, lost func(net.Conn), done func(error)) error {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return fmt.Errorf("a %T has no descriptor to pass", c)
	}
	p.mu.Lock()
	switch {
	case p.closed:
		p.mu.Unlock()
		return fmt.Errorf("%w: it has exited, or is an older build", errNotTaken)
	case p.stalled:
		p.mu.Unlock()
		return fmt.Errorf("%w: it stopped reading the connections passed to it", errNotTaken)
	case !p.taken[key]:
		p.mu.Unlock()
		return errNotTaken
	}
	id := p.nextID
	p.nextID++
	pp := &pendingPass{id: id, c: c, lost: lost, done: done}
	pp.timer = time.AfterFunc(patience, func() { p.giveUp(pp, patience) })
	p.pending[id] = pp
	p.queue = append(p.queue, queuedConn{PassedConn: wire.PassedConn{Key: key, ID: id, State: state}, conn: sc})
	p.mu.Unlock()
	p.wake()
	return nil
}

// giveUp ends a pass whose patience ran out before an answer came: one
// sent is left to the child, one never sent is refused (served here), and
// one being sent is settled by its send.
func (p *passer) giveUp(pp *pendingPass, patience time.Duration) {
	p.mu.Lock()
	if p.pending[pp.id] != pp {
		p.mu.Unlock()
		return // answered meanwhile
	}
	if pp.sending {
		pp.expired = true
		p.mu.Unlock()
		return
	}
	p.forgetLocked(pp) // the sender skips it if it is still queued
	p.mu.Unlock()
	if pp.sent {
		p.wake() // the window has room
	}
	if !pp.sent {
		p.log.Debug("a connection waited its patience to be sent to the new generation; serving it here", slog.Duration("waited", patience))
		p.settle(pp, false)
		return
	}
	p.log.Warn("the new generation did not answer for a connection passed to it; leaving it there", slog.Duration("waited", patience))
	p.leave(pp)
}

// leave ends a pass without an answer, leaving the connection to the
// child, which has it or may have it: ours is closed.
func (p *passer) leave(pp *pendingPass) {
	// Close waits while the sender has the conn pinned, in a send that a
	// frozen child may never let finish.
	go pp.c.Close()
	pp.done(nil)
}

// release closes the connections the child took: they are its alone.
// If the child died before, it returns once what it took has been handed
// back to be served here (lost), so that the drain can wait for that.
func (p *passer) release() {
	p.mu.Lock()
	held := p.held
	p.held = map[uint64]heldConn{}
	p.mu.Unlock()
	for _, h := range held {
		h.c.Close()
	}
	p.handingBack.Wait()
}

func (p *passer) close() { p.ch.Close() }

// adoptConn adopts the descriptor of a passed connection, and closes it:
// through a carrier where one can be used, so that it is not registered
// with the poller only to be deregistered (two epoll_ctl calls of the
// dozen an adoption costs), else wrapped in an *os.File.
func adoptConn(carry *fds.Carriers, fd int) (net.Conn, error) {
	if c, err := fds.Adopt(carry, fd, net.FileConn); err == nil {
		syscall.Close(fd) // FileConn made its own copy
		return c, nil
	}
	f := os.NewFile(uintptr(fd), "passed-conn")
	defer f.Close()
	return net.FileConn(f)
}
