//go:build linux || freebsd

package wire

import (
	"io"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/handoff-go/handoff/internal/fds"
)

func TestConnChannel(t *testing.T) {
	parent, childFile, err := ConnPair()
	require.NoError(t, err)
	child, err := OpenConnChannel(childFile)
	require.NoError(t, err)
	childFile.Close()

	require.NoError(t, child.Send(ConnMsg{Kind: ConnTake, Key: "tcp/127.0.0.1%3A0"}, -1))
	m, err := parent.Recv()
	require.NoError(t, err)
	assert.Equal(t, ConnTake, m.Kind)
	assert.Equal(t, "tcp/127.0.0.1%3A0", m.Key)
	assert.Equal(t, -1, m.FD)

	// A live TCP connection, passed with its state, stays the same
	// connection on the other side.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer client.Close()
	server, err := ln.Accept()
	require.NoError(t, err)
	fd, err := fds.Dup(server.(*net.TCPConn))
	require.NoError(t, err)
	require.NoError(t, parent.Send(ConnMsg{Kind: ConnConn, Key: "tcp/x", ID: 42, State: []byte("GET / HT")}, fd))
	syscall.Close(fd)
	server.Close() // the message holds its own reference

	m, err = child.Recv()
	require.NoError(t, err)
	assert.Equal(t, ConnConn, m.Kind)
	assert.Equal(t, uint64(42), m.ID)
	assert.Equal(t, "GET / HT", string(m.State))
	require.GreaterOrEqual(t, m.FD, 0)
	f := os.NewFile(uintptr(m.FD), "moved")
	moved, err := net.FileConn(f)
	require.NoError(t, err)
	f.Close()
	defer moved.Close()
	_, err = client.Write([]byte("hello"))
	require.NoError(t, err)
	buf := make([]byte, 5)
	_, err = io.ReadFull(moved, buf)
	require.NoError(t, err)
	assert.Equal(t, "hello", string(buf))

	require.NoError(t, child.Send(ConnMsg{Kind: ConnAck, ID: 42}, -1))
	m, err = parent.Recv()
	require.NoError(t, err)
	assert.Equal(t, ConnMsg{Kind: ConnAck, ID: 42, FD: -1}, m)

	// Too much state is refused before anything is sent.
	assert.Error(t, parent.Send(ConnMsg{Kind: ConnConn, Key: "tcp/x", State: make([]byte, MaxConnState+1)}, -1))

	// The other end closing is EOF.
	child.Close()
	_, err = parent.Recv()
	assert.Equal(t, io.EOF, err)
	parent.Close()
}

func TestDecodeConnMsg(t *testing.T) {
	for _, bad := range []string{"", "take", "take\nk\n", "what\nk\n1\n", "ack\n\nx\n", "ack\n\n-1\n", "take\nbad:name\n0\n", "ack\n\n123456789012345678901\n"} {
		_, err := decodeConnMsg([]byte(bad))
		assert.Error(t, err, "%q", bad)
	}
	m, err := decodeConnMsg([]byte("conn\ntcp/a\n7\nstate\nwith\nnewlines"))
	require.NoError(t, err)
	assert.Equal(t, "state\nwith\nnewlines", string(m.State))
}
