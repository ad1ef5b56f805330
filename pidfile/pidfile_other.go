//go:build !unix

package pidfile

// Check returns ErrNotSupported: pidfiles are only supported on unix.
func Check(path string) error { return ErrNotSupported }

// Write returns ErrNotSupported: pidfiles are only supported on unix.
func Write(path string, pid int) error { return ErrNotSupported }

// Read returns ErrNotSupported: pidfiles are only supported on unix.
func Read(path string) (int, error) { return 0, ErrNotSupported }

// Remove returns ErrNotSupported: pidfiles are only supported on unix.
func Remove(path string, pid int) error { return ErrNotSupported }
