//go:build !unix

package wire

import "io"

// tableflipPipes reports false: tableflip runs on unix only.
func tableflipPipes() bool { return false }

// fdReader is never read where tableflipPipes reports false.
type fdReader int

func (fdReader) Read(p []byte) (int, error) { return 0, io.EOF }
