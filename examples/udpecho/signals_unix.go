//go:build unix

package main

import (
	"os"
	"syscall"
)

var upgradeSignals = []os.Signal{syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2}
