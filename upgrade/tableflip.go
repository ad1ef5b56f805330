package upgrade

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/handoff-go/handoff/internal/wire"
)

// tableflipParent is a parent built with github.com/cloudflare/tableflip
// (see wire.EnvTableflip). This process takes its sockets by tableflip's
// names, says ready the tableflip way, and from then on is an ordinary
// handoff process: its own upgrades use handoff's protocol.
type tableflipParent struct {
	ppid  int
	ready *os.File // write one byte when ready
	names *os.File // the names pipe: EOF when the parent exits
	goneC chan struct{}
}

func adoptTableflipParent(ctl map[string]*os.File) *tableflipParent {
	return &tableflipParent{
		ppid:  os.Getppid(),
		ready: ctl[wire.CtlTableflipReady],
		names: ctl[wire.CtlTableflipParent],
		goneC: make(chan struct{}),
	}
}

func (p *tableflipParent) pid() int               { return p.ppid }
func (p *tableflipParent) gone() <-chan struct{}  { return p.goneC }
func (p *tableflipParent) channel() *os.File      { return p.names }
func (p *tableflipParent) setLogger(*slog.Logger) {}

// A tableflip parent does not park: it exits once drained.
func (p *tableflipParent) parkedUntil() (time.Time, bool) { return time.Time{}, false }
func (p *tableflipParent) upgraded()                      {}
func (p *tableflipParent) askRollback(string) error       { return ErrNoRollback }
func (p *tableflipParent) retired() <-chan struct{}       { return nil }
func (p *tableflipParent) retiring()                      {}

// fail closes the ready pipe without a byte: tableflip's protocol has no
// reason, and the parent learns of the failure when this process exits.
func (p *tableflipParent) fail(string) error { return p.ready.Close() }

// watch closes goneC when the parent exits: its names pipe reaches EOF.
func (p *tableflipParent) watch(<-chan struct{}) {
	go func() {
		buf := make([]byte, 512)
		for {
			if _, err := p.names.Read(buf); err != nil {
				break
			}
		}
		close(p.goneC)
		p.names.Close()
	}()
}

// takeOver writes the pidfile and says ready, as tableflip's own Ready
// does; the tableflip parent then stops serving. tableflip reports to no
// service manager, so this process announces itself (MAINPID=, READY=1),
// which systemd accepts only with NotifyAccess=all.
func (p *tableflipParent) takeOver(check, writePID func() error, _ <-chan struct{}) (bool, error) {
	// The pidfile is written at once; the check only explains a failure.
	if err := writePID(); err != nil {
		if cerr := check(); cerr != nil {
			err = cerr
		}
		p.ready.Close() // the parent sees the pipe close without a byte: a failure
		return false, err
	}
	if err := wire.ReadyTableflip(p.ready); err != nil {
		return false, fmt.Errorf("upgrade: %w", err)
	}
	return true, nil
}
