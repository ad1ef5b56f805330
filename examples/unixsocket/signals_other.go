//go:build !unix

package main

import "os"

// upgradeSignals is empty where handoff is not supported.
var upgradeSignals []os.Signal
