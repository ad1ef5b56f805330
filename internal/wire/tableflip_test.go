package wire

import (
	"bytes"
	"encoding/gob"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func gobNames(t testing.TB, names [][]string) []byte {
	var b bytes.Buffer
	require.NoError(t, gob.NewEncoder(&b).Encode(names))
	return b.Bytes()
}

// TestTableflipNames: tableflip's names become the names handoff gives the
// same sockets and files, so Listen finds them as it finds a handoff
// parent's; what no handoff call can ask for gets a tableflip- name.
func TestTableflipNames(t *testing.T) {
	names, err := readTableflipNames(bytes.NewReader(gobNames(t, [][]string{
		{"listener", "tcp", "127.0.0.1:8080"},
		{"packet", "udp", ":53"},
		{"fd", "lock"},
		{"conn", "tcp", "10.0.0.1:80"},
		{"listener", "unix", "/run/a\x01b.sock"},
		{},
	})))
	require.NoError(t, err)
	assert.Equal(t, []string{
		Key("tcp", "127.0.0.1:8080"), Key("udp", ":53"), FileKey("lock"),
		"tableflip-conn", "tableflip-listener", "tableflip-file",
	}, names)
	assert.Equal(t, "tcp/127.0.0.1%3A8080", names[0])

	names, err = readTableflipNames(bytes.NewReader(gobNames(t, [][]string{})))
	require.NoError(t, err)
	assert.Empty(t, names)

	for name, in := range map[string][]byte{
		"empty":      nil,
		"garbage":    []byte("not gob at all"),
		"cut short":  gobNames(t, [][]string{{"listener", "tcp", "127.0.0.1:8080"}})[:10],
		"wrong type": func() []byte { var b bytes.Buffer; gob.NewEncoder(&b).Encode(42); return b.Bytes() }(),
		"4 parts":    gobNames(t, [][]string{{"a", "b", "c", "d"}}),
	} {
		_, err := readTableflipNames(bytes.NewReader(in))
		assert.Error(t, err, name)
	}
}

func FuzzTableflipNames(f *testing.F) {
	f.Add(gobNames(f, [][]string{{"listener", "tcp", "127.0.0.1:8080"}}))
	f.Add(gobNames(f, [][]string{}))
	f.Add(gobNames(f, [][]string{{"fd", "a:b"}, {"x\x00", "", ""}}))
	f.Add([]byte("\x00\x01\x02"))
	f.Fuzz(func(t *testing.T, b []byte) {
		names, err := readTableflipNames(bytes.NewReader(b))
		if err != nil {
			return
		}
		if len(names) > MaxFiles {
			t.Fatalf("%d names", len(names))
		}
		for _, n := range names {
			if err := CheckName(n); err != nil {
				t.Fatalf("name %q cannot go into LISTEN_FDNAMES: %v", n, err)
			}
		}
	})
}
