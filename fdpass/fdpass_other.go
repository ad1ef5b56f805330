//go:build !unix

package fdpass

import (
	"net"
	"os"
	"os/exec"
)

// Inherited is the set of files a process was started with. On this
// platform there are none.
type Inherited struct{}

// Inherit returns ErrNotSupported on this platform.
func Inherit() (*Inherited, error) { return nil, ErrNotSupported }

// Start returns ErrNotSupported on this platform.
func Start(cmd *exec.Cmd, files ...Named) error { return ErrNotSupported }

// Names returns nothing on this platform.
func (in *Inherited) Names() []string { return nil }

// File returns ErrNotSupported on this platform.
func (in *Inherited) File(name string) (*os.File, error) { return nil, ErrNotSupported }

// Listener returns ErrNotSupported on this platform.
func (in *Inherited) Listener(name, network string) (net.Listener, error) {
	return nil, ErrNotSupported
}

// PacketConn returns ErrNotSupported on this platform.
func (in *Inherited) PacketConn(name, network string) (net.PacketConn, error) {
	return nil, ErrNotSupported
}

// ListenerAt returns ErrNotSupported on this platform.
func (in *Inherited) ListenerAt(network, addr string) (net.Listener, error) {
	return nil, ErrNotSupported
}

// PacketConnAt returns ErrNotSupported on this platform.
func (in *Inherited) PacketConnAt(network, addr string) (net.PacketConn, error) {
	return nil, ErrNotSupported
}

// CloseUnclaimed does nothing on this platform.
func (in *Inherited) CloseUnclaimed() []string { return nil }
