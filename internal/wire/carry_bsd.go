//go:build unix && !linux

package wire

import "os"

// carryFile is a temporary file, unlinked at once: only its descriptors
// reach it, and it is mode 0600.
func carryFile() (*os.File, error) {
	f, err := os.CreateTemp("", "handoff-carry-")
	if err != nil {
		return nil, err
	}
	os.Remove(f.Name())
	return f, nil
}
