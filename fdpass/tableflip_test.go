package fdpass

import (
	"bytes"
	"encoding/gob"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func gobNames(t testing.TB, names [][]string) []byte {
	var b bytes.Buffer
	require.NoError(t, gob.NewEncoder(&b).Encode(names))
	return b.Bytes()
}

func TestParseTableflip(t *testing.T) {
	m, err := parseTableflip(bytes.NewReader(gobNames(t, [][]string{
		{"listener", "tcp", "127.0.0.1:8080"},
		{"packet", "udp", ":53"},
		{"fd", "lock"},
	})))
	require.NoError(t, err)
	assert.Equal(t, []string{"listener:tcp:127.0.0.1:8080", "packet:udp::53", "fd:lock:"}, m.names)
	assert.Equal(t, []string{TableflipReady, TableflipParent}, m.control)
	names, control := m.fds()
	assert.Equal(t, []string{TableflipReady, TableflipParent, "listener:tcp:127.0.0.1:8080", "packet:udp::53", "fd:lock:"}, names,
		"tableflip's pipes are fds 3 and 4, the files follow")
	assert.Equal(t, []bool{true, true, false, false, false}, control)
	assert.True(t, m.tableflip)

	m, err = parseTableflip(bytes.NewReader(gobNames(t, [][]string{})))
	require.NoError(t, err)
	assert.Empty(t, m.names)

	for name, in := range map[string][]byte{
		"empty":      nil,
		"garbage":    []byte("not gob at all"),
		"cut short":  gobNames(t, [][]string{{"listener", "tcp", "127.0.0.1:8080"}})[:10],
		"wrong type": func() []byte { var b bytes.Buffer; gob.NewEncoder(&b).Encode(42); return b.Bytes() }(),
		"4 parts":    gobNames(t, [][]string{{"a", "b", "c", "d"}}),
	} {
		_, err := parseTableflip(bytes.NewReader(in))
		var ee *EnvError
		require.ErrorAs(t, err, &ee, name)
		assert.Equal(t, EnvTableflip, ee.Var, name)
	}
}

func TestTableflipHandoffOrder(t *testing.T) {
	// handoff's own layout is unchanged: files first, control after.
	m := &manifest{names: []string{"a", "b"}, control: []string{"ready"}}
	names, control := m.fds()
	assert.Equal(t, []string{"a", "b", "ready"}, names)
	assert.Equal(t, []bool{false, false, true}, control)
}

func FuzzParseTableflip(f *testing.F) {
	f.Add(gobNames(f, [][]string{{"listener", "tcp", "127.0.0.1:8080"}}))
	f.Add(gobNames(f, [][]string{}))
	f.Add([]byte("\x00\x01\x02"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseTableflip(bytes.NewReader(b))
		if err != nil {
			return
		}
		if len(m.names) > MaxFiles {
			t.Fatalf("%d names", len(m.names))
		}
		for _, n := range m.names {
			if strings.Count(n, ":") < 2 {
				t.Fatalf("name %q is not kind:network:address", n)
			}
		}
	})
}
