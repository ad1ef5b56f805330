//go:build unix

package upgrade

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/handoff-go/handoff/internal/fds"
	"github.com/handoff-go/handoff/internal/wire"
)

// TestReceiveAnswersInChunks: the connections of one message are answered
// for a chunk at a time, each chunk before any of it is handed over, and
// every one handed over serves.
func TestReceiveAnswersInChunks(t *testing.T) {
	parent, child, _ := connChannels(t)
	r := newReceiver(child, slog.New(slog.DiscardHandler))

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	const n = 2*ackChunk + 3
	var clients []net.Conn
	var passed []wire.PassedConn
	for i := range n {
		c, err := net.Dial("tcp", ln.Addr().String())
		require.NoError(t, err)
		defer c.Close()
		clients = append(clients, c)
		s, err := ln.Accept()
		require.NoError(t, err)
		fd, err := fds.Dup(s.(syscall.Conn))
		require.NoError(t, err)
		s.Close() // the passed descriptor is the only one left
		passed = append(passed, wire.PassedConn{Key: "k", ID: uint64(i), State: []byte{byte(i)}, FD: fd})
	}

	var taken []net.Conn
	var answeredAtTake []int // IDs answered when each connection was handed over
	answered := 0
	r.register("k", func(c net.Conn, state []byte) bool {
		require.Equal(t, byte(len(taken)), state[0], "handed over in order, with its state")
		// What was answered by now is on the parent's end.
		for answered <= len(taken) {
			m := recvWithin(t, parent, 10*time.Second) // a connection handed over unanswered would wait forever
			require.Equal(t, wire.ConnAck, m.Kind)
			answered += len(m.IDs)
		}
		answeredAtTake = append(answeredAtTake, answered)
		taken = append(taken, c)
		return true
	})
	r.receive(passed)

	require.Len(t, taken, n)
	want := make([]int, n)
	for i := range want {
		want[i] = min((i/ackChunk+1)*ackChunk, n)
	}
	assert.Equal(t, want, answeredAtTake, "each chunk answered before it is handed over, not the whole message")
	for i, c := range taken {
		_, err := clients[i].Write([]byte{byte(i)})
		require.NoError(t, err)
		var b [1]byte
		_, err = io.ReadFull(c, b[:])
		require.NoError(t, err)
		assert.Equal(t, byte(i), b[0], "connection %d reaches its client", i)
		c.Close()
	}
}

// connChannels returns both ends of a connection channel, and the child's
// end once more as a plain connection, all closed at the end of the test.
func connChannels(t *testing.T) (parent, child *wire.ConnChannel, raw net.Conn) {
	parent, fd, err := wire.ConnPairFD()
	require.NoError(t, err)
	childFile := os.NewFile(uintptr(fd), "conns-child")
	defer childFile.Close()
	t.Cleanup(func() { parent.Close() })
	child, err = wire.OpenConnChannel(childFile)
	require.NoError(t, err)
	t.Cleanup(func() { child.Close() })
	raw, err = net.FileConn(childFile)
	require.NoError(t, err)
	t.Cleanup(func() { raw.Close() })
	return parent, child, raw
}

// tcpConns returns a func that makes a loopback TCP connection and returns
// its server end; both ends are closed at the test's end.
func tcpConns(t *testing.T) func() net.Conn {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	return func() net.Conn {
		c, err := net.Dial("tcp", ln.Addr().String())
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		s, err := ln.Accept()
		require.NoError(t, err)
		t.Cleanup(func() { s.Close() })
		return s
	}
}

// recvWithin receives a message on ch, failing the test if none comes
// within d. A receive still waiting ends when ch is closed.
func recvWithin(t *testing.T, ch *wire.ConnChannel, d time.Duration) wire.ConnMsg {
	t.Helper()
	type got struct {
		m   wire.ConnMsg
		err error
	}
	c := make(chan got, 1)
	go func() {
		m, err := ch.Recv()
		c <- got{m, err}
	}()
	select {
	case g := <-c:
		require.NoError(t, g.err)
		return g.m
	case <-time.After(d):
		t.Fatalf("no message from the new generation within %v", d)
		return wire.ConnMsg{}
	}
}

// TestPasserOutcomes: every pass ends once, as the child answers: taken
// (and given back to lost if the child then dies), refused, or left to a
// child that does not answer within patience; and passes waiting for an
// answer are not a goroutine each.
func TestPasserOutcomes(t *testing.T) {
	parentCh, child, raw := connChannels(t)
	p := newPasser(parentCh, slog.New(slog.DiscardHandler))

	conn := tcpConns(t)

	assert.ErrorIs(t, p.start("k", conn(), nil, time.Minute, nil, func(error) { t.Error("done called for a pass never begun") }), errNotTaken)
	require.NoError(t, child.Send(wire.ConnMsg{Kind: wire.ConnTake, Key: "k"}))
	require.True(t, p.awaitTake("k", time.Now().Add(10*time.Second)))

	type outcome struct {
		i   int
		err error
	}
	outcomes := make(chan outcome, 300)
	lost := make(chan net.Conn, 300)
	const waiting = 200
	var conns []net.Conn
	before := runtime.NumGoroutine()
	begin := func(i int, patience time.Duration) {
		c := conn()
		conns = append(conns, c)
		require.NoError(t, p.start("k", c, nil, patience, func(c net.Conn) { lost <- c }, func(err error) { outcomes <- outcome{i, err} }))
	}
	for i := range waiting + 2 {
		begin(i, time.Minute)
	}
	assert.Less(t, runtime.NumGoroutine()-before, 20, "%d passes waiting are not a goroutine each", waiting+2)

	// The child: takes the first, refuses the second, ignores the rest.
	var fds []int
	ids := map[uint64]int{}
	for len(fds) < waiting+2 {
		m := recvWithin(t, child, 10*time.Second)
		for _, c := range m.Conns {
			ids[c.ID] = len(fds)
			fds = append(fds, c.FD)
		}
	}
	for _, fd := range fds {
		syscall.Close(fd)
	}
	idOf := func(i int) uint64 {
		for id, j := range ids {
			if j == i {
				return id
			}
		}
		t.Fatalf("pass %d was not sent", i)
		return 0
	}
	// One more, which the child is sent and never answers for: it is left
	// there once its patience runs out.
	begin(waiting+2, time.Second)
	m := recvWithin(t, child, 10*time.Second)
	require.Len(t, m.Conns, 1)
	syscall.Close(m.Conns[0].FD)
	require.NoError(t, child.Send(wire.ConnMsg{Kind: wire.ConnAck, IDs: []uint64{idOf(0)}}))
	require.NoError(t, child.Send(wire.ConnMsg{Kind: wire.ConnNack, IDs: []uint64{idOf(1)}}))
	got := map[int]error{}
	for len(got) < 3 {
		select {
		case o := <-outcomes:
			got[o.i] = o.err
		case <-time.After(10 * time.Second):
			t.Fatalf("outcomes so far: %v", got)
		}
	}
	assert.NoError(t, got[0], "taken")
	assert.ErrorIs(t, got[1], errRefused)
	assert.NoError(t, got[waiting+2], "left to the child that did not answer")

	// The child dies: the one it took comes back, the rest are refused.
	child.Close()
	raw.Close()
	select {
	case c := <-lost:
		assert.Same(t, conns[0], c, "the one it took")
	case <-time.After(10 * time.Second):
		t.Fatal("the connection the dead child took was not given back")
	}
	for len(got) < waiting+3 {
		select {
		case o := <-outcomes:
			_, twice := got[o.i]
			require.False(t, twice, "pass %d ended twice", o.i)
			got[o.i] = o.err
			assert.ErrorIs(t, o.err, errRefused, "pass %d", o.i)
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of %d passes ended", len(got), waiting+3)
		}
	}
	select {
	case o := <-outcomes:
		t.Fatalf("pass %d ended twice", o.i)
	case <-time.After(50 * time.Millisecond):
	}
	assert.Error(t, p.start("k", conn(), nil, time.Minute, nil, func(error) {}), "after the child's end closed")
}

// TestPasserChildSaysGarbage: a child that says what this build cannot
// read is alive, and may be serving what it took: that stays its own, as
// does what it was sent, and nothing is served twice; only what was never
// sent comes back.
func TestPasserChildSaysGarbage(t *testing.T) {
	parentCh, child, raw := connChannels(t) // raw: the child's end, to say garbage on
	p := newPasser(parentCh, slog.New(slog.DiscardHandler))
	require.NoError(t, child.Send(wire.ConnMsg{Kind: wire.ConnTake, Key: "k"}))
	require.True(t, p.awaitTake("k", time.Now().Add(10*time.Second)))

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	var clients []net.Conn
	outcomes := make(chan error, 2)
	lost := make(chan net.Conn, 2)
	for range 2 {
		c, err := net.Dial("tcp", ln.Addr().String())
		require.NoError(t, err)
		defer c.Close()
		clients = append(clients, c)
		s, err := ln.Accept()
		require.NoError(t, err)
		require.NoError(t, p.start("k", s, nil, time.Minute, func(c net.Conn) { lost <- c }, func(err error) { outcomes <- err }))
	}
	var ids []uint64
	var fds []int
	for len(fds) < 2 {
		m := recvWithin(t, child, 10*time.Second)
		for _, c := range m.Conns {
			ids, fds = append(ids, c.ID), append(fds, c.FD)
		}
	}
	require.NoError(t, child.Send(wire.ConnMsg{Kind: wire.ConnAck, IDs: ids[:1]}))
	select {
	case err := <-outcomes:
		require.NoError(t, err, "taken")
	case <-time.After(10 * time.Second):
		t.Fatal("the pass answered for did not end")
	}

	// Garbage: an answer whose id is no number.
	_, err = raw.Write([]byte("ack\nseven\n"))
	require.NoError(t, err)
	select {
	case err := <-outcomes:
		assert.NoError(t, err, "sent and unanswered: left to the child")
	case <-time.After(10 * time.Second):
		t.Fatal("the pass sent and unanswered did not end")
	}
	// This end closed its side: the child's receiver sees the end.
	done := make(chan error, 1)
	go func() {
		_, err := child.Recv()
		done <- err
	}()
	select {
	case err := <-done:
		assert.ErrorIs(t, err, io.EOF)
	case <-time.After(10 * time.Second):
		t.Fatal("the channel stayed open after the garbage")
	}
	p.release()
	select {
	case c := <-lost:
		t.Fatalf("%v given back to serve here, while the child may serve it", c.LocalAddr())
	case <-time.After(100 * time.Millisecond):
	}
	// Both connections are the child's alone now: the client reaches the
	// child's copy, and once the child closes it the client sees the end,
	// so this process holds none.
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "moved")
		moved, err := net.FileConn(f)
		f.Close()
		require.NoError(t, err)
		_, err = clients[i].Write([]byte{'a' + byte(i)})
		require.NoError(t, err)
		var b [1]byte
		_, err = io.ReadFull(moved, b[:])
		require.NoError(t, err)
		assert.Equal(t, byte('a'+i), b[0])
		moved.Close()
		require.NoError(t, clients[i].SetReadDeadline(time.Now().Add(10*time.Second)))
		_, err = clients[i].Read(b[:])
		assert.ErrorIs(t, err, io.EOF, "connection %d: no copy left in this process", i)
	}
}

// TestPasserStalls: a child that reads nothing is sent one window of
// connections, no more; the rest are served here once no answer has come
// for sendPatience, and so is any later one. What was sent stays the
// child's, to be answered for when it reads again. A child that reads
// slowly, answering within sendPatience each time, is passed every one.
func TestPasserStalls(t *testing.T) {
	const window, n = wire.MaxBatch, 10 * wire.MaxBatch
	conn := tcpConns(t)
	type outcome struct {
		id  int
		err error
	}
	setup := func(t *testing.T, patience time.Duration) (*passer, *wire.ConnChannel, chan outcome) {
		parentCh, child, _ := connChannels(t)
		p := newPasser(parentCh, slog.New(slog.DiscardHandler))
		p.window, p.sendPatience = window, patience
		require.NoError(t, child.Send(wire.ConnMsg{Kind: wire.ConnTake, Key: "k"}))
		require.True(t, p.awaitTake("k", time.Now().Add(10*time.Second)))
		outcomes := make(chan outcome, n)
		conns := make([]net.Conn, n)
		for i := range conns {
			conns[i] = conn()
		}
		for i, c := range conns {
			require.NoError(t, p.start("k", c, nil, time.Minute, nil, func(err error) { outcomes <- outcome{i, err} }))
		}
		return p, child, outcomes
	}
	// receive reads the child's messages until it has k connections, and
	// answers for each message, delay after it came.
	receive := func(child *wire.ConnChannel, k int, delay time.Duration) (map[uint64]bool, error) {
		got := map[uint64]bool{}
		for len(got) < k {
			m, err := child.Recv()
			if err != nil {
				return got, err
			}
			var ids []uint64
			for _, c := range m.Conns {
				if got[c.ID] {
					return got, fmt.Errorf("connection %d sent twice", c.ID)
				}
				got[c.ID] = true
				ids = append(ids, c.ID)
				syscall.Close(c.FD)
			}
			time.Sleep(delay)
			if err := child.Send(wire.ConnMsg{Kind: wire.ConnAck, IDs: ids}); err != nil {
				return got, err
			}
		}
		return got, nil
	}
	collect := func(t *testing.T, outcomes chan outcome, k int) map[int]error {
		got := map[int]error{}
		for len(got) < k {
			select {
			case o := <-outcomes:
				_, twice := got[o.id]
				require.False(t, twice, "pass %d ended twice", o.id)
				got[o.id] = o.err
			case <-time.After(10 * time.Second):
				t.Fatalf("%d of %d passes ended", len(got), k)
			}
		}
		return got
	}

	t.Run("frozen", func(t *testing.T) {
		p, child, outcomes := setup(t, 100*time.Millisecond)
		// The sender sends what is queued when it runs, so the window may
		// hold fewer than window when it stalls: what is refused is
		// counted, in the outcomes that come before the child reads.
		require.Eventually(t, func() bool {
			p.mu.Lock()
			defer p.mu.Unlock()
			return p.stalled
		}, 10*time.Second, 10*time.Millisecond, "never stalled")
		assert.ErrorIs(t, p.start("k", conn(), nil, time.Minute, nil, func(error) { t.Error("done called for a pass never begun") }), errNotTaken)
		assert.False(t, p.awaitTake("k", time.Now().Add(time.Second)))
		refused := map[int]error{}
		for quiet := false; !quiet; {
			select {
			case o := <-outcomes:
				_, twice := refused[o.id]
				require.False(t, twice, "pass %d ended twice", o.id)
				refused[o.id] = o.err
			case <-time.After(500 * time.Millisecond):
				quiet = true
			}
		}
		for id, err := range refused {
			assert.ErrorIs(t, err, errRefused, "pass %d, never sent", id)
		}
		sentN := n - len(refused)
		require.True(t, sentN >= 1 && sentN <= window, "%d sent, window %d", sentN, window)

		// It reads again: it has what was sent, and none of what was refused.
		received := make(chan map[uint64]bool, 1)
		go func() {
			sent, err := receive(child, sentN, 0)
			assert.NoError(t, err)
			received <- sent
		}()
		var sent map[uint64]bool
		select {
		case sent = <-received:
		case <-time.After(10 * time.Second):
			t.Fatalf("the child read fewer than the %d connections not refused", sentN)
		}
		for id := range sent {
			_, both := refused[int(id)]
			assert.False(t, both, "pass %d both sent and refused", id)
		}
		for id, err := range collect(t, outcomes, sentN) {
			assert.NoError(t, err, "pass %d, taken", id)
		}
		select {
		case o := <-outcomes:
			t.Fatalf("pass %d ended twice", o.id)
		case <-time.After(50 * time.Millisecond):
		}
	})

	// Passes that expire once sent make room in the window, but are no
	// answer: the child keeps reading nothing, so the passer still stalls,
	// sendPatience after the window first filled, instead of sending a
	// window more each time passes expire.
	t.Run("frozen while sent passes expire", func(t *testing.T) {
		parentCh, child, _ := connChannels(t)
		p := newPasser(parentCh, slog.New(slog.DiscardHandler))
		const window, waves = 16, 30
		p.window, p.sendPatience = window, time.Second
		require.NoError(t, child.Send(wire.ConnMsg{Kind: wire.ConnTake, Key: "k"}))
		require.True(t, p.awaitTake("k", time.Now().Add(10*time.Second)))
		outcomes := make(chan outcome, window*waves)
		started := 0
		for w := 0; w < waves; w++ {
			for range window {
				i := started
				if err := p.start("k", conn(), nil, 300*time.Millisecond, nil, func(err error) { outcomes <- outcome{i, err} }); err != nil {
					require.ErrorIs(t, err, errNotTaken)
					continue
				}
				started++
			}
			time.Sleep(100 * time.Millisecond)
		}
		left := 0
		for id, err := range collect(t, outcomes, started) {
			if err == nil {
				left++ // sent, and left to the child after its patience
			} else {
				assert.ErrorIs(t, err, errRefused, "pass %d", id)
			}
		}
		t.Logf("%d passes of %d started, %d of them sent and left, the rest served here", started, window*waves, left)
		p.mu.Lock()
		stalled := p.stalled
		p.mu.Unlock()
		assert.True(t, stalled, "passes expiring in the child count as answers")
		assert.Less(t, started, window*waves, "passes still begun once the child read nothing for sendPatience")
	})

	t.Run("slow", func(t *testing.T) {
		_, child, outcomes := setup(t, 300*time.Millisecond)
		go func() {
			if _, err := receive(child, n, 100*time.Millisecond); err != nil {
				t.Error(err)
			}
		}()
		for id, err := range collect(t, outcomes, n) {
			assert.NoError(t, err, "pass %d", id)
		}
	})
}
