package wire

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// A tableflip parent writes its names with encoding/gob, and this is all
// of gob that handoff reads: one [][]string. It is decoded here rather
// than by that package, whose init alone costs every handoff program about
// 0.15 ms of its start (GODEBUG=inittrace=1), on a new generation's way to
// ready, whether or not a tableflip parent started it.
//
// A gob stream is a sequence of messages, each its length in bytes, a type
// id and a body. A negative id defines the type of that id (here the two
// slice types, the outer one first); a positive id carries a value of that
// type, and that is the last message: the pipe stays open after it. Within
// a body, an unsigned integer below 128 is one byte, and a larger one is
// the negated count of the big-endian bytes that follow, then those bytes;
// a signed integer is an unsigned one shifted left by one, its lowest bit
// saying to complement it; a string or slice is its length, then its bytes
// or elements; a struct is its fields, each preceded by the difference of
// its number to the previous field's (the first field's is 1 more than
// -1), zero fields left out, and ended by a 0.

// gobString is gob's predefined type id of string.
const gobString = 6

// errGob is what a stream that is not one gob-encoded [][]string fails with.
var errGob = errors.New("not a gob-encoded [][]string")

// readGobNames decodes the one [][]string on r, reading at most limit
// bytes and nothing past its last message.
func readGobNames(r io.Reader, limit int) ([][]string, error) {
	br, ok := r.(io.ByteReader)
	if !ok {
		b := bufio.NewReader(r)
		br, r = b, b
	}
	elems := map[int64]int64{} // slice type id → its element's type id
	left := limit
	for {
		n, size, err := gobLength(br)
		if err != nil {
			return nil, err
		}
		if left -= size; n > uint64(max(left, 0)) {
			return nil, fmt.Errorf("%w: a %d-byte message past the %d bytes allowed", errGob, n, limit)
		}
		left -= int(n)
		msg := gobBody{b: make([]byte, n)}
		if _, err := io.ReadFull(r, msg.b); err != nil {
			return nil, fmt.Errorf("%w: %v", errGob, noEOF(err))
		}
		id := msg.int()
		if id < 0 {
			elem := msg.sliceType(-id)
			if err := msg.end(); err != nil {
				return nil, err
			}
			elems[-id] = elem
			continue
		}
		inner, ok := elems[id]
		if !ok || elems[inner] != gobString {
			return nil, fmt.Errorf("%w: the value is of another type", errGob)
		}
		names := msg.names()
		if err := msg.end(); err != nil {
			return nil, err
		}
		return names, nil
	}
}

// gobLength reads a message's length, an unsigned integer outside a body,
// and says in how many bytes it came.
func gobLength(r io.ByteReader) (n uint64, size int, err error) {
	c, err := r.ReadByte()
	if err != nil {
		return 0, 0, fmt.Errorf("%w: %v", errGob, noEOF(err))
	}
	if c < 0x80 {
		return uint64(c), 1, nil
	}
	size = -int(int8(c))
	if size > 8 {
		return 0, 0, fmt.Errorf("%w: a length in %d bytes", errGob, size)
	}
	for range size {
		c, err := r.ReadByte()
		if err != nil {
			return 0, 0, fmt.Errorf("%w: %v", errGob, noEOF(err))
		}
		n = n<<8 | uint64(c)
	}
	return n, 1 + size, nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF // the parent closed the pipe before the names
	}
	return err
}

// gobBody is a message's body, read from the front; the first thing
// wrong in it is kept in err, and every read after it returns 0.
type gobBody struct {
	b   []byte
	err error
}

func (m *gobBody) fail(what string) {
	if m.err == nil {
		m.err = fmt.Errorf("%w: %s", errGob, what)
	}
	m.b = nil
}

func (m *gobBody) uint() uint64 {
	if len(m.b) == 0 {
		m.fail("cut short")
		return 0
	}
	c := m.b[0]
	m.b = m.b[1:]
	if c < 0x80 {
		return uint64(c)
	}
	n := -int(int8(c))
	if n > 8 || n > len(m.b) {
		m.fail("cut short")
		return 0
	}
	var v uint64
	for _, c := range m.b[:n] {
		v = v<<8 | uint64(c)
	}
	m.b = m.b[n:]
	return v
}

func (m *gobBody) int() int64 {
	u := m.uint()
	if u&1 != 0 {
		return ^int64(u >> 1)
	}
	return int64(u >> 1)
}

// count reads a length and checks that as many things, of min bytes at
// least each, can follow.
func (m *gobBody) count(min int) int {
	n := m.uint()
	if n > uint64(len(m.b)/min) {
		m.fail("a length past the message's end")
		return 0
	}
	return int(n)
}

func (m *gobBody) string() string {
	n := m.count(1)
	s := string(m.b[:n])
	m.b = m.b[n:]
	return s
}

// field reads the number of a struct's next field after previous; -1 at
// its end.
func (m *gobBody) field(previous int) int {
	d := m.uint()
	if d == 0 || m.err != nil {
		return -1
	}
	if d > 16 {
		m.fail("an unknown field")
		return -1
	}
	return previous + int(d)
}

// sliceType reads the definition of type id, which must be a slice type
// (gob's wireType with its SliceT), and returns the id of its elements.
func (m *gobBody) sliceType(id int64) int64 {
	var elem int64
	for f := m.field(-1); f >= 0; f = m.field(f) {
		if f != 1 { // ArrayT, StructT, MapT...
			m.fail("a type other than a slice")
			return 0
		}
		for g := m.field(-1); g >= 0; g = m.field(g) { // sliceType
			switch g {
			case 0: // CommonType
				for h := m.field(-1); h >= 0; h = m.field(h) {
					switch h {
					case 0:
						m.string() // the type's name
					case 1:
						if m.int() != id {
							m.fail("a type defined under another id")
						}
					default:
						m.fail("an unknown field")
					}
				}
			case 1:
				elem = m.int()
			default:
				m.fail("an unknown field")
			}
		}
	}
	if elem == 0 {
		m.fail("a slice type without its elements' type")
	}
	return elem
}

// names reads the value: not a struct, so sent as its only field, 0; then
// the slices of strings.
func (m *gobBody) names() [][]string {
	if m.uint() != 0 {
		m.fail("a value that is not a [][]string")
		return nil
	}
	names := make([][]string, m.count(1))
	for i := range names {
		names[i] = make([]string, m.count(1))
		for j := range names[i] {
			names[i][j] = m.string()
		}
	}
	return names
}

// end reports what went wrong in the body, or that something follows what
// was read.
func (m *gobBody) end() error {
	if m.err == nil && len(m.b) > 0 {
		m.fail("more than a [][]string in the message")
	}
	return m.err
}
