package upgrade

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/handoff-go/handoff/fdpass"
	"github.com/handoff-go/handoff/internal/control"
	"github.com/handoff-go/handoff/internal/wire"
	"github.com/handoff-go/handoff/pidfile"
)

// Upgrader hands this process's sockets to a new generation of the
// program and retires this one once the new one is live. Create one with
// [New] early in main; its methods are safe for concurrent use. An
// Upgrader may not be reused after [Upgrader.Stop] or a successful
// [Upgrader.Upgrade]: the process drains and exits.
type Upgrader struct {
	// Fixed at New.
	opts      Options
	log       *slog.Logger
	next      command // how the next generation is started
	gen       int
	in        *fdpass.Inherited
	ahead     *ahead                                             // sockets of in being adopted ahead of Listen; nil if none
	parent    parent                                             // the previous generation; nil in a first one
	receiver  *receiver                                          // connections the parent passes; nil without a channel
	appTakers map[string]func(context.Context, net.Conn, []byte) // ReceiveConns, by kind
	// inheritedState is what the parent's Options.State returned.
	inheritedState []byte
	tickets        ticketKeys // TLS session ticket keys, shared across generations
	elders         []*elder   // older generations than the parent, see elders.go
	sd             *notifier
	started        time.Time
	controlLn      net.Listener                     // Options.ControlSocket; nil without one
	writePID       func(path string, pid int) error // pidfile.Write; a seam for tests
	name           string                           // the process's name, if its parent says (wire.MetaName)

	readyC chan struct{} // closed when Ready has returned nil
	stopC  chan struct{} // closed by Stop
	exitC  chan struct{} // closed once a drain begins, after the BeforeDrain hooks
	drain  drain         // the servers that drain when exitC closes, and the hooks

	readyMu     sync.Mutex // serialises Ready
	stopOnce    sync.Once
	exitOnce    sync.Once
	signalsOnce sync.Once

	mu    sync.Mutex
	phase phase
	// signalsSet is closed once HandleSignals, called before Ready, has
	// its handlers in place; Ready waits for it before taking over. Nil if
	// it was not. takingOver: Ready no longer waits for it.
	signalsSet  chan struct{}
	takingOver  bool
	stopped     bool
	files       []*handed // in creation order: the order of the child's fds
	keys        map[string]*handed
	upgradeDone chan struct{}          // closed when the upgrade in flight ends; nil while none
	successor   *child                 // the generation this one handed over to
	final       bool                   // Stop found this the last generation: its paths go
	last        *control.UpgradeResult // the last upgrade that ran, for the control socket
	parked      *park                  // while this generation waits in its rollback window
	kit         *kit                   // made ahead for the next upgrade (stockKit); nil if none
	retired     bool                   // the parked parent rolled back: not the last generation
	rolledBack  string                 // why the parent started this one, rolling back; "" if it did not
}

// phase is how far a generation's life has come.
type phase int

const (
	starting   phase = iota // before Ready
	live                    // after Ready: serving, able to upgrade
	upgrading               // an upgrade in flight
	handedOver              // a new generation took over
)

// command is how the next generation is started, fixed at New.
type command struct {
	path string
	args []string
	env  []string
	dir  string
}

// handed is one socket or file that is handed to each new generation.
type handed struct {
	name string
	conn syscall.Conn // a listener, a packet conn or an *os.File
}

// New creates an Upgrader. In a process started by a handoff parent it
// adopts the inherited sockets, to be taken by [Upgrader.Listen] and
// friends; in one started by systemd socket activation, the sockets
// systemd passed. It fails before touching anything outside this process
// if an option is invalid, the pidfile cannot be written or the inherited
// environment is malformed; a new generation that fails so tells its
// parent why.
func New(opts Options) (*Upgrader, error) {
	prep, err := wire.Prepare()
	if err != nil {
		return nil, fmt.Errorf("upgrade: adopt what the previous generation handed over: %w", err)
	}
	in, err := fdpass.Inherit()
	if err != nil {
		if errors.Is(err, fdpass.ErrNotSupported) {
			return nil, fmt.Errorf("%w on this platform: handoff needs unix descriptor passing", ErrNotSupported)
		}
		return nil, fmt.Errorf("upgrade: adopt inherited files: %w", err)
	}
	ctl, err := prep.Take(in)
	if err != nil {
		in.CloseUnclaimed()
		return nil, fmt.Errorf("upgrade: adopt what the previous generation handed over: %w", err)
	}
	// The sockets a previous generation handed over are adopted ahead from
	// here on, while the rest of New runs.
	var ahead *ahead
	if prep.Origin == wire.Handoff {
		ahead = adoptAhead(in)
	}
	u := &Upgrader{
		in:       in,
		ahead:    ahead,
		gen:      1,
		started:  time.Now(),
		readyC:   make(chan struct{}),
		stopC:    make(chan struct{}),
		exitC:    make(chan struct{}),
		keys:     make(map[string]*handed, ahead.size()),
		files:    make([]*handed, 0, ahead.size()),
		writePID: pidfile.Write,
	}
	if err := u.init(opts, prep, ctl); err != nil {
		u.abandon(ctl, err)
		return nil, err
	}
	return u, nil
}

// init sets u up; on failure abandon undoes it.
func (u *Upgrader) init(opts Options, prep *wire.Inherited, ctl map[string]*os.File) error {
	var err error
	switch prep.Origin {
	case wire.Handoff:
		u.parent, u.gen, err = adoptHandoffParent(prep.Meta, ctl)
		if err != nil {
			return err
		}
		u.elders = adoptElders(ctl)
		u.name, _ = wire.UnescapeMeta(prep.Meta[wire.MetaName])
		if f := ctl[wire.CtlConns]; f != nil {
			ch, err := wire.OpenConnChannel(f)
			f.Close() // ch has its own copy
			if err != nil {
				return fmt.Errorf("upgrade: adopt the connection channel: %w", err)
			}
			u.receiver = newReceiver(ch, slog.New(slog.DiscardHandler))
		}
		if f := ctl[wire.CtlCarry]; f != nil {
			sections, err := wire.ReadCarry(f)
			if err != nil {
				return fmt.Errorf("upgrade: read what the previous generation carried over: %w", err)
			}
			if err := u.adoptCarry(sections); err != nil {
				return err
			}
		}
	case wire.Tableflip:
		// The tableflip process was the first generation handoff knows of.
		u.parent, u.gen = adoptTableflipParent(ctl), 2
	}
	// The program file the parent started this one from: nothing to do
	// with it. A newer parent may pass control files this build does not
	// know (a later protocol's): closed, so that the parent sees them end.
	for name, f := range ctl {
		if !knownControl(name) {
			f.Close()
		}
	}
	o, err := opts.withDefaults()
	if err != nil {
		return err
	}
	u.opts, u.log = o, o.Logger
	if u.parent != nil {
		u.parent.setLogger(u.log)
	}
	if u.receiver != nil {
		u.receiver.log = u.log
	}
	u.drain = drain{log: u.log, exitC: u.exitC, doneC: make(chan struct{}),
		timeout: o.DrainTimeout, patience: o.DrainTimeout + o.StopGrace + time.Second}
	if o.RollbackWindow > 0 {
		// A parked generation's hold outlasts its drain: the window, a
		// rollback's start and the retired generation's drain.
		u.drain.patience += o.RollbackWindow + 3*o.UpgradeTimeout + o.DrainTimeout + o.StopGrace
	}
	u.sd = newNotifier(u.log)
	// A new generation's check waits for its take-over: the parent serves
	// until then whatever happens, and the probe costs a new process, on
	// a journaled filesystem, more CPU than anything else New does.
	if o.PIDFile != "" && u.parent == nil {
		if err := pidfile.Check(o.PIDFile); err != nil {
			return fmt.Errorf("upgrade: %w", err)
		}
	}
	if u.next, err = resolveCommand(o, inheritedPath(prep)); err != nil {
		return err
	}
	if o.ControlSocket != "" {
		if err := u.listenControl(); err != nil {
			return err
		}
	}
	if u.parent != nil {
		u.parent.watch(u.stopC)
		go u.awaitRetire()
	}
	if r, err := wire.UnescapeMeta(prep.Meta[wire.MetaRolledBack]); err == nil && r != "" {
		u.rolledBack = r
		u.log.Warn("started by a rollback", slog.String("reason", r))
	}
	u.watchElders()
	if os.Getpid() == 1 {
		u.log.Warn("upgrades are refused: " + strings.TrimPrefix(errPID1.Error(), "upgrade: "))
	}
	return nil
}

// abandon undoes a New that failed: a new generation tells its parent why,
// so that the parent's Upgrade reports this error and not a bare exit
// status, and every descriptor it adopted is closed.
func (u *Upgrader) abandon(ctl map[string]*os.File, err error) {
	switch {
	case u.parent != nil:
		u.parent.fail(err.Error())
	case ctl[wire.CtlReady] != nil: // a parent whose hand-over could not be understood
		wire.Fail(ctl[wire.CtlReady], strings.TrimPrefix(err.Error(), "upgrade: "))
	}
	for _, f := range ctl {
		f.Close() // those the parent and elders took are closed twice: harmless
	}
	if u.controlLn != nil {
		u.controlLn.Close()
	}
	if u.receiver != nil {
		u.receiver.ch.Close()
	}
	u.ahead.closeRest()
	u.in.CloseUnclaimed()
}

// nameOf returns the name under which ln, a stream listener of this
// Upgrader's, is handed over; "" for any other listener.
func (u *Upgrader) nameOf(ln net.Listener) string {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, h := range u.files {
		if l, ok := h.conn.(net.Listener); ok && l == ln {
			return h.name
		}
	}
	return ""
}

// successorPasser returns what passes connections to the generation this
// one handed over to; nil if none took over or it has no channel.
func (u *Upgrader) successorPasser() *passer {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.successor == nil {
		return nil
	}
	return u.successor.pass
}

// knownControl reports whether this build uses the control file name.
func knownControl(name string) bool {
	switch name {
	case wire.CtlReady, wire.CtlStderr, wire.CtlStderrPipe, wire.CtlConns, wire.CtlCarry, wire.CtlTableflipReady, wire.CtlTableflipParent:
		return true
	}
	return strings.HasPrefix(name, wire.CtlElderPrefix)
}

// inheritedPath returns the path a handoff parent starts its next
// generations with, to start the same: "" from another parent, or from
// a build that does not say.
func inheritedPath(prep *wire.Inherited) string {
	p, err := wire.UnescapeMeta(prep.Meta[wire.MetaPath])
	if err != nil || !filepath.IsAbs(p) {
		return ""
	}
	return p
}

// resolveCommand fixes how the next generation is started: Options.Path,
// or else the path this generation's parent starts, or else the path this
// process was started with.
func resolveCommand(o Options, inherited string) (command, error) {
	wd, err := os.Getwd()
	if err != nil {
		return command{}, fmt.Errorf("upgrade: working directory: %w", err)
	}
	c := command{path: o.Path, args: o.Args, env: o.Env, dir: o.Dir}
	if c.dir == "" {
		c.dir = wd
	}
	if c.args == nil {
		c.args = slices.Clone(os.Args)
	}
	if c.env == nil {
		c.env = os.Environ()
	}
	c.env = wire.StripEnv(c.env)
	if c.path == "" {
		c.path = inherited
	}
	if c.path == "" {
		if c.path, err = startPath(wd); err != nil {
			return command{}, err
		}
	}
	if !filepath.IsAbs(c.path) {
		c.path = filepath.Join(wd, c.path)
	}
	return c, nil
}

// startPath returns the path this program was started with, unresolved,
// so that a symlink flipped later is followed at upgrade time. It falls
// back to os.Executable when os.Args[0] does not lead to this program
// (the program changed directory before New, or argv[0] was made up).
func startPath(wd string) (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("upgrade: find this program's path: %w: set Options.Path", err)
	}
	if len(os.Args) == 0 || os.Args[0] == "" {
		return exe, nil
	}
	cand := os.Args[0]
	if filepath.Base(cand) == cand { // found through PATH
		p, err := exec.LookPath(cand)
		if err != nil {
			return exe, nil
		}
		cand = p
	}
	if !filepath.IsAbs(cand) {
		cand = filepath.Join(wd, cand)
	}
	a, errA := os.Stat(cand)
	b, errB := os.Stat(exe)
	if errA != nil || errB != nil || !os.SameFile(a, b) {
		return exe, nil
	}
	return cand, nil
}

// Generation is 1 for a process started by hand (or by systemd) and one
// more than its parent's for each new generation.
func (u *Upgrader) Generation() int { return u.gen }

// WaitForParent blocks until the previous generation has exited, so that
// work that must not overlap with it (an exclusive database, say) can
// begin; it learns so from the kernel closing the parent's end of a
// channel, without polling. It returns at once in a first generation, and
// ctx.Err() if ctx ends first. The parent exits only after this generation
// is live, so call it after Ready: before, it returns an error at once.
func (u *Upgrader) WaitForParent(ctx context.Context) error {
	if u.parent == nil {
		return nil
	}
	if !closed(u.readyC) {
		return fmt.Errorf("%w: WaitForParent called before Ready: the parent exits only once this generation is live; call Ready first", ErrNotReady)
	}
	select {
	case <-u.parent.gone():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Exit is closed when this process should stop serving: a new generation
// is live, or Stop was called; the BeforeDrain hooks have run by then.
// Drain and exit; [Upgrader.Serve] and [Upgrader.ServeConns] do it for you.
func (u *Upgrader) Exit() <-chan struct{} { return u.exitC }

// exit begins this generation's end: the BeforeDrain hooks, then Exit. A
// generation that never served runs no BeforeDrain hook: deregistering it
// from service discovery, say, would deregister its parent.
func (u *Upgrader) exit() {
	u.exitOnce.Do(func() {
		if closed(u.readyC) {
			u.drain.begin()
		} else {
			u.drain.skip()
		}
		close(u.exitC)
		u.drain.exited()
	})
}

// closed reports whether c is closed.
func closed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// Ready says this generation can serve. Take every socket first: Ready
// closes the inherited files nobody took, and waits for the handlers of a
// HandleSignals called before it. In a first generation it writes the
// pidfile. In a new generation it tells the parent, waits for the parent's
// go — at once (the parent sends it with the start when there is no
// probation), or after Options.Probation, during which the parent alone
// keeps serving and this process's death costs no request — then writes
// the pidfile and confirms, and the parent stops accepting and drains.
// Under systemd it also waits until the parent has made this process the
// main one (see "systemd" in the package documentation). If the parent is
// gone, Ready does not wait for it. Once Ready returns, serve; calling it
// again does nothing. It returns ErrStopped if Stop is called meanwhile.
func (u *Upgrader) Ready() error {
	u.readyMu.Lock()
	defer u.readyMu.Unlock()
	u.mu.Lock()
	ph, stopped := u.phase, u.stopped
	u.mu.Unlock()
	switch {
	case ph != starting:
		return nil
	case stopped:
		return ErrStopped
	}
	if names := append(u.ahead.closeRest(), u.in.CloseUnclaimed()...); len(names) > 0 {
		u.log.Info("closed inherited files nobody asked for", slog.Any("names", names))
	}
	u.mu.Lock()
	set := u.signalsSet
	u.takingOver = true
	u.mu.Unlock()
	if set != nil {
		select {
		case <-set:
		case <-u.stopC:
			return ErrStopped
		}
	}
	if err := u.takeOver(); err != nil {
		return err
	}
	u.mu.Lock()
	u.phase = live
	handed := slices.Clone(u.files)
	u.mu.Unlock()
	if u.receiver != nil {
		u.startReceivingApp()
		u.receiver.goLive()
	}
	close(u.readyC)
	reserveFDs(handed)
	if u.parent == nil {
		u.stockKit() // a new generation makes it once settled (settleLater)
	}
	u.serveControl()
	u.log.Info("ready", slog.Int("pid", os.Getpid()), slog.Int("generation", u.gen))
	return nil
}

// takeOver makes this generation the live one: the pidfile, and in a new
// generation the exchange with the parent.
func (u *Upgrader) takeOver() error {
	switch {
	case u.parent == nil:
		if err := u.writePIDFile(os.Getpid()); err != nil {
			return err
		}
		u.sd.started(u.gen)
	default:
		check := func() error {
			if u.opts.PIDFile == "" {
				return nil
			}
			if err := pidfile.Check(u.opts.PIDFile); err != nil {
				return fmt.Errorf("upgrade: %w", err)
			}
			return nil
		}
		announce, err := u.parent.takeOver(check, func() error { return u.writePIDFile(os.Getpid()) }, u.stopC)
		if err != nil {
			return err
		}
		if announce {
			u.sd.announce(u.gen)
		}
	}
	u.sd.becomeMain()
	if u.parent != nil {
		go u.settleLater()
	}
	return nil
}

// settleDelay bounds how long a new generation puts off what settleLater
// does while its parent lives on.
const settleDelay = time.Second

// settleLater does what a new generation puts off while it takes over,
// once the parent has exited, or after settleDelay if it has not (a
// rollback window, a long drain), unless Stop comes first: it names the
// process, if it was started from its descriptor and has a name to take
// (renaming every thread costs 80–330 µs of CPU), and makes the next
// upgrade's kit (stockKit, some 60 µs). The moment of taking over the
// load, when Serve begins and the parent's connections arrive, can spare
// that CPU least.
func (u *Upgrader) settleLater() {
	t := time.NewTimer(settleDelay)
	defer t.Stop()
	select {
	case <-u.parent.gone():
	case <-t.C:
	case <-u.stopC:
		return
	}
	if u.name != "" {
		nameProcess(u.name)
	}
	u.stockKit()
}

func (u *Upgrader) writePIDFile(pid int) error {
	if u.opts.PIDFile == "" {
		return nil
	}
	if err := u.writePID(u.opts.PIDFile, pid); err != nil {
		return fmt.Errorf("upgrade: write pidfile: %w", err)
	}
	return nil
}

// Fail tells the parent that this generation cannot start, and why; the
// parent's Upgrade returns a [*ChildError] carrying reason and the old
// generation keeps serving. Exit afterwards. In a first generation, or
// after Ready, Fail does nothing but return nil.
func (u *Upgrader) Fail(reason error) error {
	if closed(u.readyC) {
		return nil // too late: this generation is the live one
	}
	if u.parent == nil {
		return nil
	}
	if reason == nil {
		reason = errors.New("no reason given")
	}
	return u.parent.fail(reason.Error())
}

// Stop ends this generation's life as an upgrader: an upgrade in flight is
// cancelled and Stop waits until its child has been stopped and reaped;
// then the BeforeDrain hooks run and Exit is closed, so that servers
// drain. Unless a new generation has taken over (or this one never went
// live, its parent serving on), the pidfile and the control socket are
// removed, unix listeners' paths are unlinked when they close, and unixgram
// sockets' paths at once. Stop returns once Exit is
// closed, and, if no server is left to drain, once the AfterDrain hooks
// have run; it may be called more than once.
func (u *Upgrader) Stop() {
	u.stopOnce.Do(func() {
		u.mu.Lock()
		u.stopped = true
		inFlight := u.upgradeDone
		u.mu.Unlock()
		close(u.stopC)
		u.ahead.closeRest() // before Ready: what the workers adopted is nobody's
		u.dropKit()
		if inFlight != nil {
			select {
			case <-inFlight:
			case <-time.After(2*u.opts.StopGrace + time.Second):
				u.log.Warn("stop: the upgrade in flight did not end in time")
			}
		}
		u.mu.Lock()
		// The last generation: none took over from it, and it is not a
		// new one that failed, whose parent serves on with the same paths.
		final := u.successor == nil && !u.retired && (u.parent == nil || u.phase != starting)
		u.final = final
		served := u.phase != starting
		var grams []string // unixgram paths: net never unlinks them
		if final {
			for _, h := range u.files {
				switch c := h.conn.(type) {
				case *net.UnixListener:
					c.SetUnlinkOnClose(true)
				case *net.UnixConn:
					if path := unixPath(c.LocalAddr()); path != "" {
						grams = append(grams, path)
					}
				}
			}
		}
		u.mu.Unlock()
		if !served && u.controlLn != nil {
			u.closeControl() // nobody serves it: Ready was never called
		}
		for _, path := range grams {
			// Now, as a listener closes at the start of its drain: no new
			// sender reaches a service that is going away, and the next
			// start can bind the path again.
			os.Remove(path)
		}
		if final {
			u.sd.stopping(u.gen)
			if u.opts.PIDFile != "" {
				if err := pidfile.Remove(u.opts.PIDFile, os.Getpid()); err != nil && !errors.Is(err, pidfile.ErrNotOwner) {
					u.log.Warn("could not remove pidfile", slog.String("path", u.opts.PIDFile), slog.Any("error", err))
				}
			}
		}
		u.exit()
	})
	<-u.exitC
}

// untilStop returns a context that ends when Stop is called.
func (u *Upgrader) untilStop() (context.Context, context.CancelFunc) { return untilClosed(u.stopC) }
