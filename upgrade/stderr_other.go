//go:build !unix

package upgrade

import "os"

func restoreStderr(f *os.File) error { return ErrNotSupported }
