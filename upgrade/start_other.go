//go:build !unix

package upgrade

// start is never reached where New fails with ErrNotSupported.
func (u *Upgrader) start(files []*handed) (*child, error) { return nil, ErrNotSupported }
