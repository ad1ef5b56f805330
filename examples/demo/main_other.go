//go:build !unix

// Command demo shows a hot upgrade under load; it needs a unix system.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "demo: handoff needs a unix system (Linux, macOS, FreeBSD)")
	os.Exit(2)
}
