//go:build !unix

package upgrade

import "os"

// startHandoff and startForeign are never reached where New fails with
// ErrNotSupported.
func (u *Upgrader) startHandoff(*os.File, map[string][]byte, []*handed, []*elder) (*child, error) {
	return nil, ErrNotSupported
}

func (u *Upgrader) startForeign([]*handed) (*child, error) { return nil, ErrNotSupported }

// reserveFDs does nothing where upgrades are not supported.
func reserveFDs(n int) {}
