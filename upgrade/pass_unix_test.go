//go:build unix

package upgrade

import (
	"io"
	"log/slog"
	"net"
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
	parent, childFile, err := wire.ConnPair()
	require.NoError(t, err)
	defer parent.Close()
	child, err := wire.OpenConnChannel(childFile)
	childFile.Close()
	require.NoError(t, err)
	r := newReceiver(child, slog.New(slog.DiscardHandler))
	defer child.Close()

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
