//go:build linux || freebsd

package wire

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
)

// maxConnMsg bounds one message.
const maxConnMsg = maxBatchBytes + MaxConnState + MaxBatch*320 + 64

// encode lays m out as lines: the kind, then for take its key, for conn
// the count and per connection its key, id and state length, each state
// following its line; for ack and nack the ids.
func (m *ConnMsg) encode() ([]byte, error) {
	b := append([]byte(m.Kind), '\n')
	switch m.Kind {
	case ConnTake:
		if err := CheckName(m.Key); err != nil {
			return nil, err
		}
		b = append(append(b, m.Key...), '\n')
	case ConnConn:
		if len(m.Conns) == 0 || len(m.Conns) > MaxBatch {
			return nil, fmt.Errorf("%d connections in one message: 1 to %d", len(m.Conns), MaxBatch)
		}
		b = append(strconv.AppendInt(b, int64(len(m.Conns)), 10), '\n')
		for _, c := range m.Conns {
			if err := CheckName(c.Key); err != nil {
				return nil, err
			}
			if len(c.State) > MaxConnState {
				return nil, fmt.Errorf("connection state of %d bytes is more than %d", len(c.State), MaxConnState)
			}
			b = append(append(b, c.Key...), '\n')
			b = append(strconv.AppendUint(b, c.ID, 10), '\n')
			b = append(strconv.AppendInt(b, int64(len(c.State)), 10), '\n')
			b = append(b, c.State...)
		}
	case ConnAck, ConnNack:
		for _, id := range m.IDs {
			b = append(strconv.AppendUint(b, id, 10), '\n')
		}
	default:
		return nil, fmt.Errorf("unknown kind %q", m.Kind)
	}
	if len(b) > maxConnMsg {
		return nil, fmt.Errorf("message of %d bytes is more than %d", len(b), maxConnMsg)
	}
	return b, nil
}

// decodeConnMsg parses a message carrying nfds descriptors, which the
// caller assigns to the connections in order. A kind this build does not
// know (a later protocol's) is returned alone, its body and descriptors
// ignored (the caller closes them): a later build must not break the
// channel of an earlier one by saying more.
func decodeConnMsg(b []byte, nfds int) (ConnMsg, error) {
	var m ConnMsg
	line := func() ([]byte, bool) {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return nil, false
		}
		l := b[:i]
		b = b[i+1:]
		return l, true
	}
	bad := func(what string) (ConnMsg, error) {
		return ConnMsg{}, fmt.Errorf("%w: %s", ErrConnMsg, what)
	}
	kind, ok := line()
	if !ok {
		return bad("no kind")
	}
	m.Kind = string(kind)
	switch m.Kind {
	case ConnTake:
		key, ok := line()
		if !ok || CheckName(string(key)) != nil {
			return bad("take without a valid key")
		}
		m.Key = string(key)
	case ConnConn:
		l, ok := line()
		n, err := parseCount(string(l))
		if !ok || err != nil || n < 1 || n > MaxBatch {
			return bad("conn without a valid count")
		}
		for range n {
			key, ok1 := line()
			id, ok2 := line()
			size, ok3 := line()
			if !ok1 || !ok2 || !ok3 || CheckName(string(key)) != nil {
				return bad("conn entry without key, id and size")
			}
			c := PassedConn{Key: string(key), FD: -1}
			var err error
			if c.ID, err = parseID(id); err != nil {
				return bad("conn entry id")
			}
			sz, err := parseCount(string(size))
			if err != nil || sz > MaxConnState || sz > len(b) {
				return bad("conn entry state size")
			}
			if sz > 0 {
				c.State = bytes.Clone(b[:sz])
			}
			b = b[sz:]
			m.Conns = append(m.Conns, c)
		}
	case ConnAck, ConnNack:
		for len(b) > 0 {
			l, ok := line()
			if !ok {
				return bad("ids")
			}
			id, err := parseID(l)
			if err != nil {
				return bad("id")
			}
			m.IDs = append(m.IDs, id)
		}
	default:
		if !knownKindShape(kind) {
			return bad(fmt.Sprintf("kind %.20q", m.Kind))
		}
		return ConnMsg{Kind: m.Kind}, nil
	}
	if len(b) != 0 {
		return bad("trailing bytes")
	}
	if want := len(m.Conns); nfds != want {
		return bad(fmt.Sprintf("%d descriptors for %d connections", nfds, want))
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

// knownKindShape reports whether kind looks like a message kind: 1 to 16
// lowercase letters. Anything else is garbage, not a later protocol's.
func knownKindShape(kind []byte) bool {
	if len(kind) == 0 || len(kind) > 16 {
		return false
	}
	for _, c := range kind {
		if c < 'a' || c > 'z' {
			return false
		}
	}
	return true
}
