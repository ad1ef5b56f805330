package main

import (
	"context"
	"net"
	"runtime"
	"time"

	"github.com/handoff-go/handoff/upgrade"
)

// runHandoff is one generation of a handoff program with n listeners. As
// the first generation it upgrades once and reports how long Upgrade
// took; as the second it adopts the listeners, says ready and reports.
func runHandoff(ctx context.Context, n int) error {
	u, err := upgrade.New(upgrade.Options{})
	if err != nil {
		return err
	}
	defer u.Stop()
	var r parentReport
	if u.Generation() == 1 {
		if r.before, err = countFDs(); err != nil {
			return err
		}
	}
	lns, err := listenAll(n, func(addr string) (net.Listener, error) {
		return u.Listen(ctx, "tcp", addr)
	})
	if err != nil {
		return err
	}
	adopted := time.Now()
	if err := u.Ready(); err != nil {
		return err
	}
	if u.Generation() > 1 {
		err := childReady(ctx, adopted, u.WaitForParent)
		runtime.KeepAlive(lns)
		return err
	}
	settle()
	r.start = time.Now()
	err = u.Upgrade(ctx)
	r.end = time.Now()
	r.took = r.end.Sub(r.start)
	if err != nil {
		return err
	}
	if r.after, err = countFDs(); err != nil {
		return err
	}
	return finish(r, lns, u.Exit())
}
