package wire

import (
	"bytes"
	"encoding/gob"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// gobDecode is what encoding/gob itself makes of b, empty slices as nil.
func gobDecode(b []byte) ([][]string, error) {
	var names [][]string
	err := gob.NewDecoder(bytes.NewReader(b)).Decode(&names)
	return emptyAsNil(names), err
}

func emptyAsNil(names [][]string) [][]string {
	if len(names) == 0 {
		return nil
	}
	for i := range names {
		if len(names[i]) == 0 {
			names[i] = nil
		}
	}
	return names
}

// TestGobNamesAsGob: what encoding/gob writes, readGobNames reads as gob
// does: short and long strings and slices (lengths of one byte and more),
// empty ones, any bytes.
func TestGobNamesAsGob(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	str := func() string {
		n := []int{0, 1, 5, 127, 128, 300}[rng.IntN(6)]
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		return string(b)
	}
	cases := [][][]string{{}, {{}}, {{""}}, {{"listener", "tcp", "127.0.0.1:8080"}}, {{strings.Repeat("x", 70000)}}}
	for range 100 {
		names := make([][]string, []int{1, 3, 127, 128, 1000}[rng.IntN(5)])
		for i := range names {
			names[i] = make([]string, rng.IntN(4))
			for j := range names[i] {
				names[i][j] = str()
			}
		}
		cases = append(cases, names)
	}
	for _, names := range cases {
		b := gobNames(t, names)
		want, err := gobDecode(b)
		require.NoError(t, err)
		got, err := readGobNames(bytes.NewReader(b), len(b))
		require.NoError(t, err)
		require.Equal(t, want, emptyAsNil(got))
	}
}

// TestGobNamesStream: the type ids are the encoding process's own, and a
// named type carries its name; readGobNames stops after the value, and
// within the limit.
func TestGobNamesStream(t *testing.T) {
	// The stream encoding/gob writes for [][]string{{"a"}} as a process's
	// first use of gob (ids 65, then 64 for []string), renumbered to 100 and
	// 101 and with the outer type named "n".
	stream := []byte{
		0x10, 0xff, 0xc7, 0x02, 0x01, 0x01, 0x01, 'n', 0x01, 0xff, 0xc8, 0x00, 0x01, 0xff, 0xca, 0x00, 0x00,
		0x0c, 0xff, 0xc9, 0x02, 0x01, 0x02, 0xff, 0xca, 0x00, 0x01, 0x0c, 0x00, 0x00,
		0x07, 0xff, 0xc8, 0x00, 0x01, 0x01, 0x01, 'a',
	}
	want, err := gobDecode(stream)
	require.NoError(t, err, "encoding/gob reads the stream")
	require.Equal(t, [][]string{{"a"}}, want)
	r := bytes.NewReader(append(stream, "what follows"...))
	got, err := readGobNames(r, 1<<10)
	require.NoError(t, err)
	assert.Equal(t, want, got)
	assert.Equal(t, len("what follows"), r.Len(), "nothing past the value is read")

	_, err = readGobNames(bytes.NewReader(stream), len(stream)-1)
	assert.ErrorContains(t, err, "a 7-byte message past the 37 bytes allowed")
	_, err = readGobNames(bytes.NewReader(stream), len(stream))
	assert.NoError(t, err)

	// A reader that is not an io.ByteReader, as the pipe is not.
	got, err = readGobNames(strings.NewReader(string(stream)), 1<<10)
	require.NoError(t, err)
	assert.Equal(t, want, got)
}

// TestGobNamesRefused: anything but one [][]string is an error, never a
// panic, and says what it is.
func TestGobNamesRefused(t *testing.T) {
	enc := func(v any) []byte {
		var b bytes.Buffer
		require.NoError(t, gob.NewEncoder(&b).Encode(v))
		return b.Bytes()
	}
	names := gobNames(t, [][]string{{"listener", "tcp", "127.0.0.1:8080"}})
	for name, in := range map[string][]byte{
		"empty":         nil,
		"cut short":     names[:len(names)-1],
		"cut in a type": names[:5],
		"an int":        enc(42),
		"a []string":    enc([]string{"a"}),
		"a [][]int":     enc([][]int{{1}}),
		"a struct":      enc(struct{ A [][]string }{[][]string{{"a"}}}),
		"a map":         enc(map[string][]string{"a": {"b"}}),
		"a long length": {0xf7, 1, 2, 3, 4, 5, 6, 7, 8, 9},
		"a huge count":  append(slices.Clip(names[:len(names)-34]), 0x0c, 0xff, 0x82, 0x00, 0xf8, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff),
	} {
		_, err := readGobNames(bytes.NewReader(in), 1<<20)
		assert.ErrorIs(t, err, errGob, name)
	}
}

// FuzzGobNames: whatever readGobNames accepts, encoding/gob decodes to the
// same names.
func FuzzGobNames(f *testing.F) {
	f.Add(gobNames(f, [][]string{{"listener", "tcp", "127.0.0.1:8080"}}))
	f.Add(gobNames(f, [][]string{}))
	f.Add(gobNames(f, [][]string{{"fd", "a:b"}, {}, {"x\x00", "", strings.Repeat("y", 200)}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := readGobNames(bytes.NewReader(b), 1<<20)
		if err != nil {
			return
		}
		want, err := gobDecode(b)
		require.NoError(t, err, "encoding/gob refuses what readGobNames read as %q", got)
		require.Equal(t, want, emptyAsNil(got))
	})
}
