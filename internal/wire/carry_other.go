//go:build !unix

package wire

import "os"

// WriteCarry returns ErrNotSupported here.
func WriteCarry(map[string][]byte) (*os.File, error) { return nil, ErrNotSupported }

// ReadCarry returns ErrNotSupported here.
func ReadCarry(f *os.File) (map[string][]byte, error) {
	f.Close()
	return nil, ErrNotSupported
}
