//go:build unix

package wire

import (
	"bytes"
	"fmt"
	"io"
	"os"
)

// WriteCarry returns a file holding sections, for a child to read with
// ReadCarry; the caller closes it once the child has started.
func WriteCarry(sections map[string][]byte) (*os.File, error) {
	var b bytes.Buffer
	if err := encodeCarry(&b, sections); err != nil {
		return nil, err
	}
	f, err := carryFile()
	if err != nil {
		return nil, fmt.Errorf("carry file: %w", err)
	}
	if _, err := f.Write(b.Bytes()); err != nil {
		f.Close()
		return nil, fmt.Errorf("carry file: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("carry file: %w", err)
	}
	return f, nil
}

// ReadCarry reads the sections of a carry file and closes it.
func ReadCarry(f *os.File) (map[string][]byte, error) {
	defer f.Close()
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("carry file: %w", err)
	}
	return decodeCarry(f)
}
