package upgrade

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"syscall"

	"github.com/handoff-go/handoff/internal/fds"
	"github.com/handoff-go/handoff/internal/wire"
)

// The connection channel (wire.CtlConns) joins a generation to the one it
// started. The parent end is a passer, the child end a receiver.

var (
	// errNotTaken: the new generation does not take connections of that
	// key (an older build, or nothing there serves them).
	errNotTaken = errors.New("the new generation does not take these connections")
)

// receiver takes the connections the parent passes, for the servers of
// this generation that asked for them by key.
type receiver struct {
	ch  *wire.ConnChannel
	log *slog.Logger

	mu     sync.Mutex
	takers map[string]func(c net.Conn, state []byte) bool
	live   bool // Ready has returned: takers are announced as they come

	carry fds.Carriers // run's, to adopt what is passed
}

func newReceiver(ch *wire.ConnChannel, log *slog.Logger) *receiver {
	return &receiver{ch: ch, log: log, takers: map[string]func(net.Conn, []byte) bool{}}
}

// register makes take receive the connections of key, from when this
// generation is live; take reports whether it took the connection, and
// must not block.
func (r *receiver) register(key string, take func(c net.Conn, state []byte) bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.takers[key] = take
	if r.live {
		r.announce(key)
	}
}

// unregister stops taking connections of key: later ones are refused.
func (r *receiver) unregister(key string) {
	r.mu.Lock()
	delete(r.takers, key)
	r.mu.Unlock()
}

// goLive announces the takers, and those registered later as they come,
// and begins receiving.
func (r *receiver) goLive() {
	r.mu.Lock()
	r.live = true
	for key := range r.takers {
		r.announce(key)
	}
	r.mu.Unlock()
	go r.run()
}

// announce tells the parent that key is taken; r.mu is held.
func (r *receiver) announce(key string) {
	if err := r.ch.Send(wire.ConnMsg{Kind: wire.ConnTake, Key: key}); err != nil {
		r.log.Debug("could not ask the parent for connections", slog.String("key", key), slog.Any("error", err))
	}
}

// run receives connections until the parent's end closes (it exited).
func (r *receiver) run() {
	defer r.ch.Close()
	defer r.carry.Close()
	for {
		m, err := r.ch.Recv()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				r.log.Warn("connection channel from the parent broke", slog.Any("error", err))
			}
			return
		}
		if m.Kind != wire.ConnConn {
			continue
		}
		r.receive(m.Conns)
	}
}

// ackChunk is how many connections of a message are adopted, answered
// and handed over together. Adopting one costs 12–15 µs unloaded and up to
// 90 under load, and none of a chunk is served before its answer: answering
// a message of 50 at once kept its first connection waiting for the other
// 49. A chunk of 8 costs an answer (a few µs) per 8 connections.
const ackChunk = 8

// receive adopts, answers for and hands over the connections of a message,
// a chunk at a time. After an answer the parent did not hear, the rest of
// the message is closed unanswered: the parent keeps what it does not hear
// of.
func (r *receiver) receive(passed []wire.PassedConn) {
	for len(passed) > 0 {
		n := min(len(passed), ackChunk)
		ok := r.receiveChunk(passed[:n])
		passed = passed[n:]
		if !ok {
			for _, p := range passed {
				os.NewFile(uintptr(p.FD), "passed-conn").Close()
			}
			return
		}
	}
}

// receiveChunk answers for connections, then hands over those it took: the
// parent keeps its copies until the answer, so nothing is read here before.
// It reports false if the parent did not hear the answer.
func (r *receiver) receiveChunk(passed []wire.PassedConn) bool {
	type took struct {
		c     net.Conn
		state []byte
		take  func(net.Conn, []byte) bool
		key   string
	}
	var acks, nacks []uint64
	var taken []took
	r.mu.Lock()
	for _, p := range passed {
		take := r.takers[p.Key]
		c, err := adoptConn(&r.carry, p.FD)
		if take == nil || err != nil {
			if c != nil {
				c.Close()
			}
			nacks = append(nacks, p.ID)
			continue
		}
		acks = append(acks, p.ID)
		taken = append(taken, took{c: c, state: p.State, take: take, key: p.Key})
	}
	r.mu.Unlock()
	if len(nacks) > 0 {
		if err := r.ch.Send(wire.ConnMsg{Kind: wire.ConnNack, IDs: nacks}); err != nil {
			r.log.Warn("could not answer the parent for connections", slog.Any("error", err))
		}
	}
	if len(acks) > 0 {
		if err := r.ch.Send(wire.ConnMsg{Kind: wire.ConnAck, IDs: acks}); err != nil {
			if !errors.Is(err, syscall.EPIPE) {
				// The parent did not hear: it keeps the connections.
				r.log.Warn("could not answer the parent for connections", slog.Any("error", err))
				for _, t := range taken {
					t.c.Close()
				}
				return false
			}
			// Its end is closed: it exited, with its copies, or gave up
			// waiting and closed them. Nobody else has these now.
			r.log.Info("the parent is gone; the connections it passed are this generation's", slog.Int("connections", len(taken)))
		}
	}
	for _, t := range taken {
		if !t.take(t.c, t.state) {
			// Its server stopped between the answer and now: the
			// connection is ours, and goes as an idle one does when a
			// server stops.
			r.log.Debug("a connection passed by the parent came after its server stopped", slog.String("key", t.key))
			t.c.Close()
		}
	}
	return true
}
