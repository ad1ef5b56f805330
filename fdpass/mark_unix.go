//go:build unix && !linux

package fdpass

import "errors"

// markInherited proves that the n descriptors from first on are open and
// marks them close-on-exec (see markEach).
func markInherited(first, n int) (int, error) { return markEach(first, n) }

// dupOnto is not used here: sockets are adopted by wrapping them.
func dupOnto(from, to int) error { return errors.ErrUnsupported }
