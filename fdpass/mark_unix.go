//go:build unix && !linux

package fdpass

import "errors"

// markInherited proves that the n descriptors from first on are open and
// marks them close-on-exec (see markEach).
func markInherited(first, n int) (int, error) { return markEach(first, n) }

// carrierWorks says whether sockets can be adopted through a carrier: not
// here, where they are wrapped in an *os.File each.
const carrierWorks = false

// dupOnto is not called here (carrierWorks).
func dupOnto(from, to int) error { return errors.ErrUnsupported }
