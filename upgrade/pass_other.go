//go:build !unix

package upgrade

import (
	"net"
	"time"

	"github.com/handoff-go/handoff/internal/fds"
)

// passer is never made where there are no upgrades: these are what the
// code shared with unix calls on a nil one.
type passer struct{}

func (p *passer) awaitTake(string, time.Time) bool { return false }
func (p *passer) pass(string, net.Conn, []byte, time.Duration, func(net.Conn)) error {
	return ErrNotSupported
}
func (p *passer) start(string, net.Conn, []byte, time.Duration, func(net.Conn), func(error)) error {
	return ErrNotSupported
}
func (p *passer) release() {}
func (p *passer) close()   {}

// adoptConn is never called where there are no upgrades.
func adoptConn(*fds.Carriers, int) (net.Conn, error) { return nil, ErrNotSupported }
