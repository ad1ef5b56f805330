//go:build !unix

package upgrade

// kit: there is no child to make one for here.
type kit struct{}

func newKit() (*kit, error) { return nil, ErrNotSupported }
func (*kit) close()         {}
