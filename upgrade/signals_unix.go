//go:build unix

package upgrade

import (
	"os"
	"syscall"
)

var (
	defaultUpgradeSignals = []os.Signal{syscall.SIGHUP, syscall.SIGUSR2}
	defaultStopSignals    = []os.Signal{syscall.SIGTERM, syscall.SIGINT}
	sigUSR1               = []os.Signal{syscall.SIGUSR1}
)
