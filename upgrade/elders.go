package upgrade

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/handoff-go/handoff/internal/wire"
)

// An elder is a generation older than this one that may still be
// draining. This process holds a copy of the child's end of that
// generation's readiness channel, which reaches EOF when the elder exits:
// so any generation can count the generations alive without polling, to
// enforce Options.MaxGenerations.
type elder struct {
	pid  int
	ctl  *os.File      // closed once the elder is gone
	gone chan struct{} // closed when the elder has exited
}

// adoptElders takes the elders' channels a parent passed.
func adoptElders(ctl map[string]*os.File) []*elder {
	var elders []*elder
	for _, name := range slices.Sorted(maps.Keys(ctl)) {
		f := ctl[name]
		pidStr, ok := strings.CutPrefix(name, wire.CtlElderPrefix)
		if !ok {
			continue
		}
		pid, err := strconv.Atoi(pidStr)
		if err != nil {
			f.Close()
			continue
		}
		elders = append(elders, &elder{pid: pid, ctl: f, gone: make(chan struct{})})
	}
	return elders
}

// watchElders closes each elder's gone channel when it exits.
func (u *Upgrader) watchElders() {
	for _, e := range u.elders {
		go func() {
			ctx, cancel := u.untilStop()
			defer cancel()
			if wire.WaitClosed(ctx, e.ctl) == nil {
				close(e.gone)
			}
			e.ctl.Close()
		}()
	}
}

// aliveElders returns the older generations still alive, the parent
// first, as elders whose channels can be handed to a new generation.
func (u *Upgrader) aliveElders() []*elder {
	var alive []*elder
	if u.parent != nil {
		select {
		case <-u.parent.gone():
		default:
			alive = append(alive, &elder{pid: u.parent.pid(), ctl: u.parent.channel()})
		}
	}
	for _, e := range u.elders {
		select {
		case <-e.gone:
		default:
			alive = append(alive, e)
		}
	}
	return alive
}

// checkGenerations refuses an upgrade that would leave more than
// Options.MaxGenerations generations alive.
func (u *Upgrader) checkGenerations(alive []*elder) error {
	n := len(alive) + 2 // this one and the new one
	if n <= u.opts.MaxGenerations {
		return nil
	}
	pids := make([]string, len(alive))
	for i, e := range alive {
		pids[i] = strconv.Itoa(e.pid)
	}
	return fmt.Errorf("%w: an upgrade now would make %d (this one, the new one, and older ones still draining or parked in a rollback window: PIDs %s) and MaxGenerations is %d; wait for the oldest to finish draining (or its window to pass), or raise MaxGenerations",
		ErrTooManyGenerations, n, strings.Join(pids, ", "), u.opts.MaxGenerations)
}
