//go:build !unix

package fds

import (
	"errors"
	"os"
)

func dupCloexec(fd int) (int, error) { return -1, errors.New("not supported on this platform") }

// BoundTo reports false: there are no inherited sockets here.
func BoundTo(fd int, addr string) bool { return false }

// Carriers are never usable here: Adopt fails, and the caller wraps the
// descriptor.
type Carriers struct{}

// Adopt fails: there are no carriers here.
func Adopt[T any](p *Carriers, fd int, adopt func(*os.File) (T, error)) (T, error) {
	var zero T
	return zero, errors.ErrUnsupported
}

// Close does nothing.
func (p *Carriers) Close() {}
