//go:build !linux

package main

import (
	"fmt"
	"os"
)

// The comparison needs Linux: a child subreaper, /proc and SO_REUSEPORT's
// Linux semantics.
func main() {
	fmt.Fprintln(os.Stderr, "compare: runs on Linux only")
	os.Exit(2)
}
