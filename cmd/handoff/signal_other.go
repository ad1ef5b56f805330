//go:build !unix

package main

import (
	"context"
	"fmt"
	"os"
	"time"
)

func upgradeBySignal(ctx context.Context, path, sig string, timeout time.Duration) int {
	fmt.Fprintln(os.Stderr, "handoff upgrade: -pidfile needs a unix system")
	return exitUsage
}
