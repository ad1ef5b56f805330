//go:build linux

package upgrade

import (
	"net"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestParseProcAddr(t *testing.T) {
	for _, c := range []struct {
		in   string
		ip   string
		port int
	}{
		{"0100007F:1F90", "127.0.0.1", 8080},
		{"00000000:0050", "0.0.0.0", 80},
		{"00000000000000000000000001000000:01BB", "::1", 443},
		{"0000000000000000FFFF00000100007F:0016", "127.0.0.1", 22}, // ::ffff:127.0.0.1
	} {
		ip, port, ok := parseProcAddr(c.in)
		assert.True(t, ok, c.in)
		assert.True(t, ip.Equal(net.ParseIP(c.ip)), "%s: got %v", c.in, ip)
		assert.Equal(t, c.port, port, c.in)
	}
	for _, bad := range []string{"", "0100007F", "0100007F:", "XYZ:0050", "0100:0050", "0100007F:10000"} {
		_, _, ok := parseProcAddr(bad)
		assert.False(t, ok, bad)
	}
}

// FuzzParseProcAddr: lines of /proc/net/* are outside input; nothing may
// panic, and what parses has a 4- or 16-byte address.
func FuzzParseProcAddr(f *testing.F) {
	f.Add("0100007F:1F90")
	f.Add("00000000000000000000000001000000:01BB")
	f.Fuzz(func(t *testing.T, s string) {
		ip, port, ok := parseProcAddr(s)
		if ok && (len(ip) != 4 && len(ip) != 16 || port < 0 || port > 65535) {
			t.Fatalf("%q: ip %v port %d", s, ip, port)
		}
	})
}
