//go:build !unix

package upgrade

import "os"

// startHandoff and startForeign are never reached where New fails with
// ErrNotSupported.
func (u *Upgrader) startHandoff(launch, []*handed, []*elder) (*child, error) {
	return nil, ErrNotSupported
}

func (u *Upgrader) startForeign([]*handed) (*child, error) { return nil, ErrNotSupported }

// reserveFDs does nothing where upgrades are not supported.
func reserveFDs([]*handed) {}

// nextEnv and childEnv: there is no next generation here.
func (u *Upgrader) nextEnv() ([]string, error) { return nil, ErrNotSupported }
func (u *Upgrader) childEnv() []string         { return nil }

// openRead opens path for reading.
func openRead(path string) (*os.File, error) { return os.Open(path) }
