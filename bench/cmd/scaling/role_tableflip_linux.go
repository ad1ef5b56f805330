package main

import (
	"context"
	"net"
	"runtime"
	"time"

	"github.com/cloudflare/tableflip"
)

// runTableflip is runHandoff with tableflip v1.2.3: the first generation
// upgrades once and reports; the second adopts the listeners and says
// ready.
func runTableflip(ctx context.Context, n int) error {
	upg, err := tableflip.New(tableflip.Options{})
	if err != nil {
		return err
	}
	defer upg.Stop()
	var r parentReport
	if !upg.HasParent() {
		if r.before, err = countFDs(); err != nil {
			return err
		}
	}
	lns, err := listenAll(n, func(addr string) (net.Listener, error) {
		return upg.Listen("tcp", addr)
	})
	if err != nil {
		return err
	}
	adopted := time.Now()
	if err := upg.Ready(); err != nil {
		return err
	}
	if upg.HasParent() {
		err := childReady(ctx, adopted, upg.WaitForParent)
		runtime.KeepAlive(lns)
		return err
	}
	// tableflip's Ready closes a channel that its own goroutine must see
	// before it accepts an upgrade; until then (a race that settle
	// usually covers) Upgrade fails at once, having started nothing, and
	// is tried again. Only the attempt that starts a child is timed.
	settle()
	for {
		r.start = time.Now()
		err = upg.Upgrade()
		r.end = time.Now()
		r.took = r.end.Sub(r.start)
		if err == nil || err.Error() != "process is not ready yet" {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err != nil {
		return err
	}
	if r.after, err = countFDs(); err != nil {
		return err
	}
	return finish(r, lns, upg.Exit())
}
