//go:build linux || freebsd

package wire

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ConnChannel is one end of the connection channel (see [CtlConns]).
// Send and Recv may be called concurrently with each other; sends are
// serialised, and so are receives.
type ConnChannel struct {
	c   *net.UnixConn
	wmu sync.Mutex
	// rmu guards the buffers Recv reads into, made at the first Recv and
	// kept until the channel ends: a message may be maxConnMsg (about 120
	// KiB) long, and one made per message was a large allocation each,
	// zeroed in fresh memory. Both ends of a move of 512 connections made
	// about 4 MiB of them, and page faults in a new process taking over.
	rmu  sync.Mutex
	rbuf []byte
	roob []byte
}

// ConnPairFD returns a connection channel: parent stays with the caller;
// child, a bare close-on-exec descriptor (see [PairFD]), is handed to the
// program it starts, and the caller closes its copy with syscall.Close
// once that has started.
func ConnPairFD() (parent *ConnChannel, child int, err error) {
	// Made blocking: os.NewFile then leaves both ends out of the
	// runtime's poller (a non-blocking end is registered when wrapped and
	// deregistered when closed), and net.FileConn makes its own copy
	// non-blocking. The child's end becomes so when its own FileConn
	// copies it, whatever its build.
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, -1, os.NewSyscallError("socketpair", err)
	}
	pf := os.NewFile(uintptr(fds[0]), "conns-parent")
	defer pf.Close() // FileConn made its own copy
	ch, err := OpenConnChannel(pf)
	if err != nil {
		unix.Close(fds[1])
		return nil, -1, err
	}
	return ch, fds[1], nil
}

// OpenConnChannel makes a channel of f, a child's control file; f may be
// closed afterwards.
func OpenConnChannel(f *os.File) (*ConnChannel, error) {
	c, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("connection channel: %w", err)
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("connection channel: a %T, not a unix socket", c)
	}
	return &ConnChannel{c: uc}, nil
}

// Send sends m, with the descriptors of its connections attached; the
// caller keeps them open and closes them when it likes (the message holds
// its own references).
func (ch *ConnChannel) Send(m ConnMsg) error { return ch.SendBy(m, time.Time{}) }

// SendBy is Send, giving up at deadline (none if zero) while the other end
// reads nothing and the channel is full: the error then wraps
// os.ErrDeadlineExceeded. A message goes whole or not at all
// (SOCK_SEQPACKET), so one that timed out was not sent.
func (ch *ConnChannel) SendBy(m ConnMsg, deadline time.Time) error {
	b, err := m.encode()
	if err != nil {
		return err
	}
	var oob []byte
	if len(m.Conns) > 0 {
		fds := make([]int, len(m.Conns))
		for i, c := range m.Conns {
			fds[i] = c.FD
		}
		oob = unix.UnixRights(fds...)
	}
	ch.wmu.Lock()
	defer ch.wmu.Unlock()
	if err := ch.c.SetWriteDeadline(deadline); err != nil {
		return fmt.Errorf("connection channel: send %s: %w", m.Kind, err)
	}
	if _, _, err := ch.c.WriteMsgUnix(b, oob, nil); err != nil {
		return fmt.Errorf("connection channel: send %s: %w", m.Kind, err)
	}
	return nil
}

// Recv returns the next message, each connection's descriptor in its FD
// (close-on-exec; the caller owns them). A message of a kind this build
// does not know comes with its Kind alone (its descriptors closed): the
// caller ignores it. It returns io.EOF once the other end is closed.
func (ch *ConnChannel) Recv() (ConnMsg, error) {
	ch.rmu.Lock()
	defer ch.rmu.Unlock()
	if ch.rbuf == nil {
		ch.rbuf, ch.roob = make([]byte, maxConnMsg), make([]byte, unix.CmsgSpace(4*MaxBatch))
	}
	m, err := ch.recv(ch.rbuf, ch.roob)
	if err != nil {
		// Both readers stop at an error; the channel is over. A later Recv
		// would make the buffers again.
		ch.rbuf, ch.roob = nil, nil
	}
	return m, err
}

// recv reads a message into buf and oob, and decodes it (the result keeps
// nothing of either).
func (ch *ConnChannel) recv(buf, oob []byte) (ConnMsg, error) {
	n, oobn, flags, _, err := ch.c.ReadMsgUnix(buf, oob)
	fds := rights(oob[:oobn])
	closeAll := func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}
	switch {
	case err != nil:
		closeAll()
		if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
			return ConnMsg{}, io.EOF
		}
		return ConnMsg{}, fmt.Errorf("connection channel: %w", err)
	case n == 0 && oobn == 0:
		return ConnMsg{}, io.EOF // SOCK_SEQPACKET: the other end closed
	case flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0:
		closeAll()
		return ConnMsg{}, fmt.Errorf("%w: truncated", ErrConnMsg)
	}
	m, err := decodeConnMsg(buf[:n], len(fds))
	if err != nil {
		closeAll()
		return ConnMsg{}, err
	}
	for i := range m.Conns {
		m.Conns[i].FD = fds[i]
	}
	for _, fd := range fds[len(m.Conns):] {
		unix.Close(fd) // a kind this build does not know
	}
	return m, nil
}

// rights returns the descriptors in the control messages of oob.
func rights(oob []byte) []int {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil
	}
	var fds []int
	for _, msg := range msgs {
		if r, err := unix.ParseUnixRights(&msg); err == nil {
			fds = append(fds, r...)
		}
	}
	return fds
}

// Close closes this end; the other end's Recv returns io.EOF.
func (ch *ConnChannel) Close() error { return ch.c.Close() }
