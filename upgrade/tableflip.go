package upgrade

import (
	"fmt"
	"os"

	"github.com/handoff-go/handoff/fdpass"
	"github.com/handoff-go/handoff/readiness"
)

// A process started by a parent built with github.com/cloudflare/tableflip
// (see fdpass.EnvTableflip) takes its sockets by tableflip's names, tells
// the parent it is ready tableflip's way, and from then on is an ordinary
// handoff process: its own upgrades use handoff's protocol.

// adoptTableflip takes the pipes a tableflip parent passed.
func (u *Upgrader) adoptTableflip() error {
	in := u.inherited
	ready, err := in.Control(fdpass.TableflipReady)
	if err != nil {
		return fmt.Errorf("upgrade: the tableflip parent passed no ready pipe: %w", err)
	}
	parent, err := in.Control(fdpass.TableflipParent)
	if err != nil {
		ready.Close()
		return fmt.Errorf("upgrade: the tableflip parent passed no names pipe: %w", err)
	}
	u.tfReady, u.tfParent = ready, parent
	u.parentPID = os.Getppid()
	u.generation = 2 // the tableflip process was the first handoff knows of
	return nil
}

// watchTableflip closes parentGone when the tableflip parent exits: its
// names pipe then reaches EOF.
func (u *Upgrader) watchTableflip() {
	buf := make([]byte, 512)
	for {
		if _, err := u.tfParent.Read(buf); err != nil {
			break
		}
	}
	u.tfParent.Close()
	close(u.parentGone)
}

// tableflipTakeOver writes the pidfile and says ready, as tableflip's own
// Ready does; the tableflip parent then stops serving. tableflip does not
// report to a service manager, so this process announces itself
// (MAINPID=, READY=1), which systemd accepts only with NotifyAccess=all;
// it pings a systemd watchdog only if WATCHDOG_PID names it, which the
// tableflip process's does not.
func (u *Upgrader) tableflipTakeOver() error {
	if err := u.writePIDFile(os.Getpid()); err != nil {
		u.tfReady.Close() // the parent sees the pipe close without a byte: a failure
		return err
	}
	if err := readiness.ReadyTableflip(u.tfReady); err != nil {
		return fmt.Errorf("upgrade: %w", err)
	}
	u.becomeMain(u.sd != nil)
	return nil
}

// tableflipKind is tableflip's kind of file for a network.
func tableflipKind(network string) string {
	switch network {
	case "udp", "udp4", "udp6", "unixgram":
		return "packet"
	}
	return "listener"
}
