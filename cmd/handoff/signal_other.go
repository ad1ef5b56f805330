//go:build !unix

package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/handoff-go/handoff/internal/control"
)

func upgradeBySignal(ctx context.Context, path, sig string, timeout time.Duration) (control.UpgradeResult, int) {
	fmt.Fprintln(os.Stderr, "handoff upgrade: -pidfile needs a unix system")
	return control.UpgradeResult{}, exitUsage
}
