//go:build !unix

package fdpass

import (
	"net"
	"os"
	"syscall"
)

// Dup is not supported on this platform.
func Dup(c syscall.Conn, name string) (*os.File, error) { return nil, ErrNotSupported }

// DupFD is not supported on this platform.
func DupFD(c syscall.Conn) (int, error) { return -1, ErrNotSupported }

// Inherited is the set of files a process was started with. On this
// platform it is always empty.
type Inherited struct{}

// Inherit is not supported on this platform.
func Inherit() (*Inherited, error) { return nil, ErrNotSupported }

// FromHandoff reports false on this platform.
func (in *Inherited) FromHandoff() bool { return false }

// Meta reports nothing on this platform.
func (in *Inherited) Meta(key string) (string, bool) { return "", false }

// Names returns nothing on this platform.
func (in *Inherited) Names() []string { return nil }

// File is not supported on this platform.
func (in *Inherited) File(name string) (*os.File, error) { return nil, ErrNotSupported }

// ControlNames returns nothing on this platform.
func (in *Inherited) ControlNames() []string { return nil }

// Control is not supported on this platform.
func (in *Inherited) Control(name string) (*os.File, error) { return nil, ErrNotSupported }

// Listener is not supported on this platform.
func (in *Inherited) Listener(name, network string) (net.Listener, error) {
	return nil, ErrNotSupported
}

// PacketConn is not supported on this platform.
func (in *Inherited) PacketConn(name, network string) (net.PacketConn, error) {
	return nil, ErrNotSupported
}

// ListenerAt is not supported on this platform.
func (in *Inherited) ListenerAt(network, addr string) (net.Listener, error) {
	return nil, ErrNotSupported
}

// PacketConnAt is not supported on this platform.
func (in *Inherited) PacketConnAt(network, addr string) (net.PacketConn, error) {
	return nil, ErrNotSupported
}

// CloseUnclaimed does nothing on this platform.
func (in *Inherited) CloseUnclaimed() []string { return nil }

// FromTableflip reports false on this platform.
func (in *Inherited) FromTableflip() bool { return false }
