//go:build !(linux || freebsd)

package wire

import (
	"os"
	"time"
)

// ConnChannel is one end of the connection channel; connections move
// between generations only where unix SOCK_SEQPACKET sockets carry
// descriptors (Linux, FreeBSD).
type ConnChannel struct{}

// ConnPairFD returns ErrNotSupported here.
func ConnPairFD() (*ConnChannel, int, error) { return nil, -1, ErrNotSupported }

// OpenConnChannel returns ErrNotSupported here.
func OpenConnChannel(*os.File) (*ConnChannel, error) { return nil, ErrNotSupported }

// Send returns ErrNotSupported.
func (*ConnChannel) Send(ConnMsg) error { return ErrNotSupported }

// SendBy returns ErrNotSupported.
func (*ConnChannel) SendBy(ConnMsg, time.Time) error { return ErrNotSupported }

// Recv returns ErrNotSupported.
func (*ConnChannel) Recv() (ConnMsg, error) { return ConnMsg{}, ErrNotSupported }

// Close does nothing.
func (*ConnChannel) Close() error { return nil }
