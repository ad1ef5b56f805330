package wire

import "errors"

// CtlConns is the control file of the connection channel (protocol
// version 3): a SOCK_SEQPACKET socket pair on which a parent passes live
// connections to its child, the descriptors attached to the messages.
// A child of an older version closes it at once; the parent reads EOF and
// passes nothing.
//
//	child:  take <key>               it serves connections of key from now on
//	parent: conn (<key> <id> <state>)... up to MaxBatch connections
//	child:  ack <id>...              taken: those connections are the child's
//	child:  nack <id>...             not taken: they are still the parent's
//
// The parent keeps its own descriptor of a connection until the child
// answers, so a child that dies before it answers loses nothing: the
// parent serves the connection on. The child answers before it reads a
// byte from the connection, and may answer for a conn message in several
// ack and nack messages (builds since 2026-12 answer 8 connections at a time).
const CtlConns = "conns"

// MaxConnState bounds the state that travels with one connection.
const MaxConnState = 32 << 10

// MaxBatch bounds the connections in one message, and maxBatchBytes the
// state they carry together (one connection may carry MaxConnState).
const (
	MaxBatch      = 64
	maxBatchBytes = 64 << 10
)

// ErrConnMsg is a message on the connection channel that is none: the
// other end is there, saying what this build cannot read.
var ErrConnMsg = errors.New("malformed message on the connection channel")

// The kinds of message on the connection channel.
const (
	ConnTake = "take"
	ConnConn = "conn"
	ConnAck  = "ack"
	ConnNack = "nack"
)

// ConnMsg is one message on the connection channel.
type ConnMsg struct {
	Kind  string       // ConnTake, ConnConn, ConnAck or ConnNack
	Key   string       // take: what the child serves
	Conns []PassedConn // conn
	IDs   []uint64     // ack, nack
}

// PassedConn is one connection in a conn message.
type PassedConn struct {
	Key   string // what the connection belongs to
	ID    uint64
	State []byte // what travels with it
	FD    int    // the descriptor: the sender's to send, the receiver's once received
}

// Fits reports whether a conn message of conns can take one more with
// state: the batch limits.
func Fits(conns []PassedConn, state []byte) bool {
	if len(conns) >= MaxBatch {
		return false
	}
	n := len(state)
	for _, c := range conns {
		n += len(c.State)
	}
	return len(conns) == 0 || n <= maxBatchBytes
}
