//go:build !unix

package upgrade

import (
	"os"
	"syscall"
)

var (
	defaultUpgradeSignals []os.Signal
	defaultStopSignals    = []os.Signal{syscall.SIGTERM, os.Interrupt}
	sigUSR1               []os.Signal
)
