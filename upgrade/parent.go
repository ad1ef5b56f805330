package upgrade

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/handoff-go/handoff/internal/wire"
)

// parent is the previous generation, as this one sees it: a handoff
// parent (this file) or a tableflip one (tableflip.go).
type parent interface {
	pid() int
	setLogger(log *slog.Logger)
	// watch follows the parent, from New, until it exits or stop closes.
	watch(stop <-chan struct{})
	// takeOver is Ready's part of the exchange: it says this generation
	// is ready, calls writePID when the parent lets it take over (at once
	// if go came before), and returns once this generation is the live
	// one. announce says the
	// parent did not tell the service manager that this process is the
	// main one now, so it must say so itself.
	// check says, before ready, whether the pidfile can be written.
	takeOver(check, writePID func() error, stop <-chan struct{}) (announce bool, err error)
	// fail tells the parent this generation cannot start.
	fail(reason string) error
	// gone is closed once the parent has exited.
	gone() <-chan struct{}
	// channel returns a descriptor that reaches EOF when the parent
	// exits, for the next generation to count it among those alive.
	channel() *os.File

	// After the hand-over, with a parent parked in a rollback window:
	// parkedUntil says until when it waits (ok false: it does not);
	// upgraded tells it this generation handed over to one of its own;
	// askRollback asks it to take back over; retired is closed when it
	// did, and retiring says this generation drains.
	parkedUntil() (until time.Time, ok bool)
	upgraded()
	askRollback(reason string) error
	retired() <-chan struct{}
	retiring()
}

// handoffParent is a parent built with handoff, speaking package wire's
// protocol on the readiness channel.
type handoffParent struct {
	log    *slog.Logger
	ppid   int
	ctl    *os.File // the readiness channel
	stderr stderrSwitch
	// notify: the parent reports to systemd and says main after live.
	notify   bool
	goC      chan struct{} // closed when the parent says go, or is gone
	mainC    chan struct{} // closed when the parent says main, or is gone
	goneC    chan struct{} // closed when the parent has exited
	mainSaid bool          // the parent said main; written before mainC closes
	// window is the parent's rollback window (MetaWindow); zero: none.
	window  time.Duration
	proto   int // the parent's protocol version (MetaProto); 1 if unsaid
	mu      sync.Mutex
	liveAt  time.Time // when this generation said live
	retireC chan struct{}
	retire  sync.Once
}

// adoptHandoffParent takes the control files a handoff parent passed, and
// returns it with this generation's number.
func adoptHandoffParent(meta map[string]string, ctl map[string]*os.File) (*handoffParent, int, error) {
	ready := ctl[wire.CtlReady]
	if ready == nil {
		return nil, 0, errors.New("upgrade: the parent passed no readiness channel")
	}
	if meta[wire.MetaGo] != "1" {
		return nil, 0, errors.New("upgrade: the parent runs a handoff build too old to hand over to this one (it does not say go): restart the service instead")
	}
	gen, err := strconv.Atoi(meta[wire.MetaGen])
	if err != nil || gen < 2 {
		return nil, 0, fmt.Errorf("upgrade: the parent passed a malformed generation %q", meta[wire.MetaGen])
	}
	ppid, err := strconv.Atoi(meta[wire.MetaPPID])
	if err != nil {
		ppid = os.Getppid()
	}
	var window time.Duration
	if ms, err := strconv.ParseInt(meta[wire.MetaWindow], 10, 64); err == nil && ms > 0 {
		window = time.Duration(ms) * time.Millisecond
	}
	proto, err := strconv.Atoi(meta[wire.MetaProto])
	if err != nil {
		proto = 1
	}
	return &handoffParent{
		window:  window,
		proto:   proto,
		retireC: make(chan struct{}),
		log:     slog.New(slog.DiscardHandler),
		ppid:    ppid,
		ctl:     ready,
		stderr:  stderrSwitch{orig: ctl[wire.CtlStderr], pipe: ctl[wire.CtlStderrPipe]},
		notify:  meta[wire.MetaNotify] == "1",
		goC:     make(chan struct{}),
		mainC:   make(chan struct{}),
		goneC:   make(chan struct{}),
	}, gen, nil
}

func (p *handoffParent) pid() int                   { return p.ppid }
func (p *handoffParent) gone() <-chan struct{}      { return p.goneC }
func (p *handoffParent) channel() *os.File          { return p.ctl }
func (p *handoffParent) setLogger(log *slog.Logger) { p.log, p.stderr.log = log, log }

// fail sends reason, without the package's prefix: the parent's error adds
// its own.
func (p *handoffParent) fail(reason string) error {
	return wire.Fail(p.ctl, strings.TrimPrefix(reason, "upgrade: "))
}

// watch follows the parent through the readiness channel: goC closes when
// it says go (or is gone), mainC when it says main (at once when it has
// no service manager to tell) or is gone, goneC when it has exited and
// its end is closed.
func (p *handoffParent) watch(stop <-chan struct{}) {
	// A go sent with the start is taken now, so that Ready takes over at
	// once instead of waiting for the goroutine below to be scheduled.
	early := wire.TakeGo(p.ctl)
	if early {
		close(p.goC)
		if !p.notify {
			close(p.mainC) // nobody to tell: Ready need not wait for the goroutine below
		}
	}
	go func() {
		ctx, cancel := untilClosed(stop)
		defer cancel()
		if !early {
			switch err := wire.WaitGo(ctx, p.ctl); {
			case ctx.Err() != nil:
				return
			case errors.Is(err, wire.ErrClosed):
				// Gone before go: settle stderr and goneC first, so
				// that Ready, released by goC, finds them settled.
				p.died()
				close(p.goC)
				close(p.mainC)
				return
			case err != nil:
				p.log.Warn("the parent broke the hand-over protocol; going on alone", slog.Any("error", err))
			}
			close(p.goC)
		}
		if p.notify {
			switch err := wire.WaitMain(ctx, p.ctl); {
			case ctx.Err() != nil:
				return
			case errors.Is(err, wire.ErrClosed):
				p.died()
				close(p.mainC)
				return
			case err != nil:
				p.log.Warn("the parent broke the hand-over protocol; going on alone", slog.Any("error", err))
			default:
				p.mainSaid = true
			}
		}
		if p.notify || !early {
			close(p.mainC)
		}
		p.follow(ctx)
	}()
}

// follow reads what the parent says after the hand-over until it exits.
func (p *handoffParent) follow(ctx context.Context) {
	l := wire.NewLines(p.ctl)
	for {
		m, err := l.Next(ctx)
		var me *wire.MessageError
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, wire.ErrClosed):
			p.died()
			return
		case errors.As(err, &me):
			continue // not ours to understand
		case err != nil:
			if wire.WaitClosed(ctx, p.ctl) == nil {
				p.died()
			}
			return
		case m.Kind == "retire":
			p.retire.Do(func() { close(p.retireC) })
		}
	}
}

func (p *handoffParent) parkedUntil() (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.window <= 0 || p.liveAt.IsZero() {
		return time.Time{}, false
	}
	return p.liveAt.Add(p.window), true
}

func (p *handoffParent) upgraded() {
	if _, ok := p.parkedUntil(); ok && !closed(p.goneC) {
		p.tell(wire.Upgraded)
	}
}

func (p *handoffParent) askRollback(reason string) error {
	return wire.AskRollback(p.ctl, strings.TrimPrefix(reason, "upgrade: "))
}

func (p *handoffParent) retired() <-chan struct{} { return p.retireC }
func (p *handoffParent) retiring()                { p.tell(wire.Retiring) }

// died records that the parent has exited.
func (p *handoffParent) died() {
	p.stderr.rescue() // the parent no longer reads our stderr pipe
	close(p.goneC)
	p.ctl.Close() // nothing more to say to a parent that is gone
}

func (p *handoffParent) takeOver(check, writePID func() error, stop <-chan struct{}) (bool, error) {
	switch ahead := closed(p.goC); {
	case ahead && p.proto >= wire.VersionStream:
		// Go came with the start (no probation): take over now and say
		// ready and live in one message, which a parent reading the
		// channel as a stream takes apart.
		if err := p.goLive(check, writePID); err != nil {
			return false, err
		}
		p.tell(wire.ReadyLive)
		p.stderr.restore() // once said: no failure is quoted from here on
	default:
		// Fail before the parent's probation, not after. Without one, go
		// has come already and the pidfile's write says the same.
		if !ahead {
			if err := check(); err != nil {
				p.fail(err.Error())
				return false, err
			}
		}
		p.tell(wire.Ready)
		select {
		case <-p.goC:
		case <-stop:
			return false, ErrStopped
		}
		if err := p.goLive(check, writePID); err != nil {
			return false, err
		}
		p.tell(wire.Live)
		p.stderr.restore()
	}
	// Wait until the parent has told the service manager that this
	// process is the main one: before that, what this one sends would be
	// refused (systemd's default NotifyAccess=main).
	select {
	case <-p.mainC:
	case <-stop:
		return false, ErrStopped
	}
	return p.notify && !p.mainSaid, nil
}

// goLive takes over after go: the pidfile, and the time the rollback
// window counts from. A pidfile that cannot be written is reported as
// check explains it, if it can.
func (p *handoffParent) goLive(check, writePID func() error) error {
	if err := writePID(); err != nil {
		if cerr := check(); cerr != nil {
			err = cerr
		}
		p.fail(err.Error())
		return err
	}
	p.mu.Lock()
	p.liveAt = time.Now()
	p.mu.Unlock()
	return nil
}

// tell sends a message; a parent that is gone no longer matters.
func (p *handoffParent) tell(send func(*os.File) error) {
	if err := send(p.ctl); err != nil {
		select {
		case <-p.goneC:
			p.log.Info("the parent is gone; this generation is the live one")
		default:
			p.log.Warn("could not tell the parent", slog.Any("error", err))
		}
	}
}

// stderrSwitch gives this process back the stderr its parent had. Until
// the parent says go, a new generation's fd 2 is a pipe to the parent, so
// that a failure can be quoted; then fd 2 becomes the parent's own stderr.
type stderrSwitch struct {
	log  *slog.Logger
	orig *os.File // the parent's stderr; nil if it passed none
	// pipe is the read end of this process's stderr pipe, held so that
	// the pipe always has a reader (no SIGPIPE if the parent dies).
	pipe *os.File
	once sync.Once
}

// restore makes the parent's stderr this process's fd 2: at go.
func (s *stderrSwitch) restore() { s.once.Do(func() { s.switchOver(); s.close() }) }

// rescue is restore for a parent that died first: it also copies out what
// the parent left unread in the pipe, so that a write blocked on the full
// pipe resumes.
func (s *stderrSwitch) rescue() {
	s.once.Do(func() {
		s.switchOver()
		if s.orig != nil && s.pipe != nil {
			// Through orig, not os.Stderr: a writer blocked on the pipe
			// holds os.Stderr's write lock. The wrappers keep io.Copy off
			// the file-to-file paths, which take it too.
			s.pipe.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			io.Copy(struct{ io.Writer }{s.orig}, struct{ io.Reader }{s.pipe})
		}
		s.close()
	})
}

func (s *stderrSwitch) switchOver() {
	if s.orig == nil {
		return
	}
	if err := restoreStderr(s.orig); err != nil && s.log != nil {
		s.log.Warn("could not restore standard error; it still goes through the parent", slog.Any("error", err))
	}
}

func (s *stderrSwitch) close() {
	if s.pipe != nil {
		s.pipe.Close()
	}
	if s.orig != nil {
		s.orig.Close()
	}
}

// untilClosed returns a context that ends when stop is closed.
func untilClosed(stop <-chan struct{}) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}
