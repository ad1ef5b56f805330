//go:build unix && !linux

package fdpass

// markInherited proves that the n descriptors from first on are open and
// marks them close-on-exec (see markEach).
func markInherited(first, n int) (int, error) { return markEach(first, n) }
