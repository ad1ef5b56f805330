//go:build unix

package fds

import (
	"net"
	"strconv"

	"golang.org/x/sys/unix"
)

// BoundTo reports whether the socket fd is bound to addr: a unix path, or
// host:port with a port other than 0, where an empty or unspecified host
// matches only a socket bound to the unspecified address and a host name
// matches any of its addresses.
func BoundTo(fd int, addr string) bool {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return false
	}
	if u, ok := sa.(*unix.SockaddrUnix); ok {
		return u.Name == addr
	}
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port == 0 {
		return false
	}
	var ip net.IP
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		if a.Port != port {
			return false
		}
		ip = net.IP(a.Addr[:])
	case *unix.SockaddrInet6:
		if a.Port != port {
			return false
		}
		ip = net.IP(a.Addr[:])
	default:
		return false
	}
	want := net.ParseIP(host)
	if host == "" || want != nil && want.IsUnspecified() {
		return ip.IsUnspecified()
	}
	if want != nil {
		return ip.Equal(want)
	}
	ips, _ := net.LookupIP(host) // a name such as localhost
	for _, w := range ips {
		if ip.Equal(w) {
			return true
		}
	}
	return false
}
