//go:build linux || freebsd

package wire

import (
	"bytes"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/handoff-go/handoff/internal/fds"
)

func TestConnChannel(t *testing.T) {
	parent, child := connChannelPair(t)

	require.NoError(t, child.Send(ConnMsg{Kind: ConnTake, Key: "tcp/127.0.0.1%3A0"}))
	m, err := parent.Recv()
	require.NoError(t, err)
	assert.Equal(t, ConnMsg{Kind: ConnTake, Key: "tcp/127.0.0.1%3A0"}, m)

	// Live TCP connections, passed with their state in one message, stay
	// the same connections on the other side.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	var clients []net.Conn
	var batch []PassedConn
	for i := range 3 {
		client, err := net.Dial("tcp", ln.Addr().String())
		require.NoError(t, err)
		defer client.Close()
		clients = append(clients, client)
		server, err := ln.Accept()
		require.NoError(t, err)
		fd, err := fds.Dup(server.(*net.TCPConn))
		require.NoError(t, err)
		server.Close() // the copy stays
		batch = append(batch, PassedConn{Key: "tcp/x", ID: uint64(40 + i), State: []byte{'s', byte('0' + i)}, FD: fd})
	}
	batch[1].State = nil
	require.NoError(t, parent.Send(ConnMsg{Kind: ConnConn, Conns: batch}))
	for _, c := range batch {
		syscall.Close(c.FD) // the message holds its own references
	}

	m, err = child.Recv()
	require.NoError(t, err)
	require.Equal(t, ConnConn, m.Kind)
	require.Len(t, m.Conns, 3)
	for i, c := range m.Conns {
		assert.Equal(t, uint64(40+i), c.ID)
		assert.Equal(t, batch[i].State, c.State)
		f := os.NewFile(uintptr(c.FD), "moved")
		moved, err := net.FileConn(f)
		require.NoError(t, err)
		f.Close()
		_, err = clients[i].Write([]byte{'a' + byte(i)})
		require.NoError(t, err)
		b := make([]byte, 1)
		_, err = io.ReadFull(moved, b)
		require.NoError(t, err)
		assert.Equal(t, []byte{'a' + byte(i)}, b, "connection %d is the same one", i)
		moved.Close()
	}

	require.NoError(t, child.Send(ConnMsg{Kind: ConnAck, IDs: []uint64{40, 42}}))
	require.NoError(t, child.Send(ConnMsg{Kind: ConnNack, IDs: []uint64{41}}))
	m, err = parent.Recv()
	require.NoError(t, err)
	assert.Equal(t, ConnMsg{Kind: ConnAck, IDs: []uint64{40, 42}}, m)
	m, err = parent.Recv()
	require.NoError(t, err)
	assert.Equal(t, ConnMsg{Kind: ConnNack, IDs: []uint64{41}}, m)

	// What cannot be sent is refused before anything is sent.
	assert.Error(t, parent.Send(ConnMsg{Kind: ConnConn, Conns: []PassedConn{{Key: "tcp/x", State: make([]byte, MaxConnState+1)}}}))
	assert.Error(t, parent.Send(ConnMsg{Kind: ConnConn}))
	assert.Error(t, parent.Send(ConnMsg{Kind: ConnConn, Conns: make([]PassedConn, MaxBatch+1)}))

	// The other end closing is EOF.
	child.Close()
	_, err = parent.Recv()
	assert.Equal(t, io.EOF, err)
	parent.Close()
}

func TestDecodeConnMsg(t *testing.T) {
	for _, bad := range []string{"", "take", "take\nbad:name\n", "Wh at\n", "\n", "ack\nx\n", "ack\n-1\n", "ack\n1",
		"conn\n0\n", "conn\n1\ntcp/a\n1\n5\nabc", "conn\n1\ntcp/a\n1\n0\nextra", "conn\n2\ntcp/a\n1\n0\n",
		"ack\n123456789012345678901\n", "conn\n65\n"} {
		_, err := decodeConnMsg([]byte(bad), 0)
		assert.Error(t, err, "%q", bad)
	}
	_, err := decodeConnMsg([]byte("conn\n1\ntcp/a\n7\n0\n"), 0)
	assert.Error(t, err, "a connection without its descriptor")
	_, err = decodeConnMsg([]byte("ack\n7\n"), 1)
	assert.Error(t, err, "a descriptor with an answer")
	// A later protocol's kind is not an error: it comes alone.
	m, err := decodeConnMsg([]byte("later\nwhat: ever\n\x00"), 2)
	require.NoError(t, err)
	assert.Equal(t, ConnMsg{Kind: "later"}, m)
	m, err = decodeConnMsg([]byte("conn\n1\ntcp/a\n7\n19\nstate\nwith\nnewlines"), 1)
	require.NoError(t, err)
	assert.Equal(t, "state\nwith\nnewlines", string(m.Conns[0].State))
}

func TestFits(t *testing.T) {
	assert.True(t, Fits(nil, make([]byte, MaxConnState)))
	assert.False(t, Fits(make([]PassedConn, MaxBatch), nil))
	full := []PassedConn{{State: make([]byte, maxBatchBytes)}}
	assert.False(t, Fits(full, []byte("x")))
}

// Recv reads every message into the same buffer: what it returned before
// is the caller's, and the next message does not change it.
func TestConnChannelMessagesKeepTheirOwn(t *testing.T) {
	parent, child := connChannelPair(t)
	devNull, err := os.Open(os.DevNull)
	require.NoError(t, err)
	defer devNull.Close()
	send := func(key string, state byte) {
		fd, err := fds.Dup(devNull)
		require.NoError(t, err)
		defer syscall.Close(fd)
		require.NoError(t, parent.Send(ConnMsg{Kind: ConnConn, Conns: []PassedConn{{Key: key, ID: uint64(state), State: bytes.Repeat([]byte{state}, 1000), FD: fd}}}))
	}
	send("tcp/first", 'a')
	send("tcp/second", 'b')
	var got []ConnMsg
	for range 2 {
		m, err := child.Recv()
		require.NoError(t, err)
		require.Len(t, m.Conns, 1)
		syscall.Close(m.Conns[0].FD)
		got = append(got, m)
	}
	for i, want := range []struct {
		key   string
		state byte
	}{{"tcp/first", 'a'}, {"tcp/second", 'b'}} {
		assert.Equal(t, want.key, got[i].Conns[0].Key)
		assert.Equal(t, bytes.Repeat([]byte{want.state}, 1000), got[i].Conns[0].State)
	}
	// After the end, Recv still says so (its buffers are gone).
	parent.Close()
	for range 2 {
		_, err := child.Recv()
		assert.Equal(t, io.EOF, err)
	}
}

// connChannelPair returns both ends of a connection channel, closed at the
// end of the test.
func connChannelPair(t testing.TB) (parent, child *ConnChannel) {
	parent, fd, err := ConnPairFD()
	require.NoError(t, err)
	childFile := os.NewFile(uintptr(fd), "conns-child")
	child, err = OpenConnChannel(childFile)
	childFile.Close()
	require.NoError(t, err)
	t.Cleanup(func() { parent.Close(); child.Close() })
	return parent, child
}

// BenchmarkConnChannel sends and receives a message of 64 connections (one
// descriptor passed 64 times), as a move sends them.
func BenchmarkConnChannel(b *testing.B) {
	parent, child := connChannelPair(b)
	devNull, err := os.Open(os.DevNull)
	require.NoError(b, err)
	defer devNull.Close()
	fd := int(devNull.Fd())
	batch := make([]PassedConn, MaxBatch)
	for i := range batch {
		batch[i] = PassedConn{Key: "tcp/127.0.0.1%3A8080", ID: uint64(i), FD: fd}
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := parent.Send(ConnMsg{Kind: ConnConn, Conns: batch}); err != nil {
			b.Fatal(err)
		}
		m, err := child.Recv()
		if err != nil {
			b.Fatal(err)
		}
		for _, c := range m.Conns {
			syscall.Close(c.FD)
		}
	}
}

// A message of a kind this build does not know, from a later build, is
// passed over with what it carried closed; the channel goes on.
func TestConnChannelLaterKinds(t *testing.T) {
	parent, child := connChannelPair(t)
	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer w.Close()
	_, _, err = parent.c.WriteMsgUnix([]byte("later\nwhat: ever\n"), unix.UnixRights(int(r.Fd())), nil)
	require.NoError(t, err)
	r.Close()
	require.NoError(t, parent.Send(ConnMsg{Kind: ConnAck, IDs: []uint64{7}}))

	m, err := child.Recv()
	require.NoError(t, err)
	assert.Equal(t, ConnMsg{Kind: "later"}, m)
	m, err = child.Recv()
	require.NoError(t, err)
	assert.Equal(t, ConnMsg{Kind: ConnAck, IDs: []uint64{7}}, m)
	_, err = w.Write([]byte{1})
	assert.ErrorIs(t, err, syscall.EPIPE, "the descriptor that came with it was closed")
}

// TestSendByGivesUp: a send to an end that reads nothing gives up at its
// deadline once the channel is full, and what timed out was not sent: the
// reader, reading at last, gets every message sent before it and the next
// one sent, and no other.
func TestSendByGivesUp(t *testing.T) {
	parent, child := connChannelPair(t)
	devNull, err := os.Open(os.DevNull)
	require.NoError(t, err)
	defer devNull.Close()
	batch := make([]PassedConn, MaxBatch)
	for i := range batch {
		batch[i] = PassedConn{Key: "tcp/127.0.0.1%3A8080", ID: uint64(i), FD: int(devNull.Fd())}
	}
	sent := 0
	for ; ; sent++ {
		require.Less(t, sent, 10000, "the channel never filled")
		err := parent.SendBy(ConnMsg{Kind: ConnConn, Conns: batch}, time.Now().Add(50*time.Millisecond))
		if err != nil {
			require.ErrorIs(t, err, os.ErrDeadlineExceeded)
			break
		}
	}
	require.Positive(t, sent)
	t.Logf("%d messages of %d went before the channel was full", sent, MaxBatch)
	for range sent {
		m, err := child.Recv()
		require.NoError(t, err)
		assert.Len(t, m.Conns, MaxBatch)
		for _, c := range m.Conns {
			syscall.Close(c.FD)
		}
	}
	require.NoError(t, parent.Send(ConnMsg{Kind: ConnAck, IDs: []uint64{7}}), "no deadline left behind")
	m, err := child.Recv()
	require.NoError(t, err)
	assert.Equal(t, ConnMsg{Kind: ConnAck, IDs: []uint64{7}}, m, "the message that timed out is not there")
}
