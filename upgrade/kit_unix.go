//go:build unix

package upgrade

import (
	"fmt"
	"os"
	"syscall"

	"github.com/handoff-go/handoff/internal/wire"
)

// A kit is what an upgrade makes new for the child it starts, apart from
// the files it hands over: the child's stdin, the pipe its stderr goes
// through until go, its readiness channel and its connection channel.
// Nothing in them depends on the moment, so they are made ahead, once
// the generation is live (Upgrader.stockKit), and an upgrade takes them:
// some twenty system calls fewer between the signal and the fork, three
// of them registering a descriptor with the poller (56 µs of the 113
// from Upgrade to the fork at one socket on an idle 2-CPU VM, 58 µs under
// load). Each descriptor is close-on-exec until the child is started with
// it, and a kit is used once: the process keeps seven descriptors more
// while it serves (five where there is no connection channel).
type kit struct {
	stdin      int               // /dev/null, read-only
	stderrR    *os.File          // ours: what the child writes to stderr until go
	stderrW    int               // the child's stderr until go
	ctl        *os.File          // ours: the readiness channel
	childCtl   int               // the child's end of it
	conns      *wire.ConnChannel // ours: the connection channel; nil where there is none
	childConns int               // the child's end of it; -1 without one
}

// takeKit returns the kit made ahead, or a new one if there is none.
func (u *Upgrader) takeKit() (*kit, error) {
	u.mu.Lock()
	k := u.kit
	u.kit = nil
	u.mu.Unlock()
	if k == nil {
		return newKit()
	}
	if k.conns == nil {
		// Made ahead without one (descriptors short then, say): try again.
		if conns, child, err := wire.ConnPairFD(); err == nil {
			k.conns, k.childConns = conns, child
		}
	}
	return k, nil
}

// newKit makes a kit; a platform without a connection channel gives one
// without it.
func newKit() (*kit, error) {
	stdin, err := syscall.Open(os.DevNull, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, os.NewSyscallError("open "+os.DevNull, err)
	}
	k := &kit{stdin: stdin, stderrW: -1, childCtl: -1, childConns: -1}
	if k.stderrR, k.stderrW, err = stderrPipe(); err != nil {
		k.close()
		return nil, fmt.Errorf("stderr pipe: %w", err)
	}
	if k.ctl, k.childCtl, err = wire.PairFD(); err != nil {
		k.close()
		return nil, err
	}
	if conns, child, err := wire.ConnPairFD(); err == nil {
		k.conns, k.childConns = conns, child
	}
	return k, nil
}

// close closes what of k is still open; the parts an upgrade kept are
// set to nil or -1 first.
func (k *kit) close() {
	for _, fd := range []int{k.stdin, k.stderrW, k.childCtl, k.childConns} {
		if fd >= 0 {
			syscall.Close(fd)
		}
	}
	if k.stderrR != nil {
		k.stderrR.Close()
	}
	if k.ctl != nil {
		k.ctl.Close()
	}
	if k.conns != nil {
		k.conns.Close()
	}
}
