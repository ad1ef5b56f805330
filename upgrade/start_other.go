//go:build !unix

package upgrade

// start is never reached where New fails with ErrNotSupported.
func (u *Upgrader) start(files []*handed, elders []*elder) (*child, error) {
	return nil, ErrNotSupported
}

// reserveFDs does nothing where upgrades are not supported.
func reserveFDs(n int) {}
