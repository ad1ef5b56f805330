package wire

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
)

// CtlConns is the control file of the connection channel (protocol
// version 3): a SOCK_SEQPACKET socket pair on which a parent passes live
// connections to its child, one message each, the descriptor attached.
// A child of an older version closes it at once; the parent reads EOF and
// passes nothing.
//
//	child:  take <key>             it serves connections of key from now on
//	parent: conn <key> <id> <state> one connection, its descriptor attached
//	child:  ack <id>               taken: the connection is the child's
//	child:  nack <id>              not taken: it is still the parent's
//
// The parent keeps its own descriptor of a connection until the child
// answers, so a child that dies before it answers loses nothing: the
// parent serves the connection on. The child answers before it reads a
// byte from the connection.
const CtlConns = "conns"

// MaxConnState bounds the state that travels with one connection.
const MaxConnState = 64 << 10

// The kinds of message on the connection channel.
const (
	ConnTake = "take"
	ConnConn = "conn"
	ConnAck  = "ack"
	ConnNack = "nack"
)

// ConnMsg is one message on the connection channel.
type ConnMsg struct {
	Kind  string // ConnTake, ConnConn, ConnAck or ConnNack
	Key   string // take, conn: what the connection belongs to
	ID    uint64 // conn, ack, nack
	State []byte // conn: what travels with the connection
	FD    int    // conn: the descriptor, received; -1 if none came
}

// errConnMsg is a message on the connection channel that is none.
var errConnMsg = errors.New("malformed message on the connection channel")

// maxConnMsg bounds one message: kind, key, id and state.
const maxConnMsg = MaxConnState + 512

// encode lays m out as "kind\nkey\nid\n" and the state.
func (m *ConnMsg) encode() ([]byte, error) {
	if len(m.State) > MaxConnState {
		return nil, fmt.Errorf("connection state of %d bytes is more than %d", len(m.State), MaxConnState)
	}
	if err := CheckName(m.Key); m.Key != "" && err != nil {
		return nil, err
	}
	b := make([]byte, 0, len(m.Kind)+len(m.Key)+24+len(m.State))
	b = append(b, m.Kind...)
	b = append(b, '\n')
	b = append(b, m.Key...)
	b = append(b, '\n')
	b = strconv.AppendUint(b, m.ID, 10)
	b = append(b, '\n')
	return append(b, m.State...), nil
}

// decodeConnMsg parses a message; the descriptor is the caller's to add.
func decodeConnMsg(b []byte) (ConnMsg, error) {
	m := ConnMsg{FD: -1}
	fields := bytes.SplitN(b, []byte("\n"), 4)
	if len(fields) != 4 {
		return m, fmt.Errorf("%w: connection message %.40q", errConnMsg, b)
	}
	m.Kind, m.Key = string(fields[0]), string(fields[1])
	switch m.Kind {
	case ConnTake, ConnConn, ConnAck, ConnNack:
	default:
		return m, fmt.Errorf("%w: connection message of kind %.20q", errConnMsg, m.Kind)
	}
	if m.Key != "" {
		if err := CheckName(m.Key); err != nil {
			return m, fmt.Errorf("%w: %v", errConnMsg, err)
		}
	}
	id, err := parseID(fields[2])
	if err != nil {
		return m, fmt.Errorf("%w: connection message id %.24q", errConnMsg, fields[2])
	}
	m.ID = id
	if len(fields[3]) > 0 {
		m.State = bytes.Clone(fields[3])
	}
	return m, nil
}

// parseID accepts plain decimal digits only.
func parseID(b []byte) (uint64, error) {
	if len(b) == 0 || len(b) > 19 {
		return 0, errors.New("not an id")
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, errors.New("not an id")
		}
		n = n*10 + uint64(c-'0')
	}
	return n, nil
}
