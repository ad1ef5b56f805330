package upgrade

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/handoff-go/handoff/fdpass"
	"github.com/handoff-go/handoff/internal/control"
	"github.com/handoff-go/handoff/pidfile"
	"github.com/handoff-go/handoff/readiness"
)

// Names of the control descriptors handed to a child.
const (
	ctlReady  = "ready"  // readiness channel, see package readiness
	ctlStderr = "stderr" // the parent's own stderr, restored by the child at Ready
	// ctlStderrPipe is the read end of the child's stderr pipe. The child
	// holds it only so that the pipe always has a reader: if the parent
	// dies before the child is ready, the child's stderr writes cannot
	// raise SIGPIPE before it switches to ctlStderr.
	ctlStderrPipe = "stderr-pipe"
	metaGen       = "gen"  // generation number of the child
	metaPPID      = "ppid" // the parent's PID
	metaGo        = "go"   // present: the parent answers ready with go and waits for live
)

// Upgrader hands this process's sockets to a new generation of the
// program and retires this one once the new one is ready. Create one with
// [New] early in main; its methods are safe for concurrent use. An
// Upgrader may not be reused after [Upgrader.Stop] or a successful
// [Upgrader.Upgrade]: the process is expected to drain and exit.
type Upgrader struct {
	opts Options
	log  *slog.Logger

	// How the next generation is started, fixed at New.
	path string
	args []string
	env  []string
	dir  string

	inherited  *fdpass.Inherited
	parentCtl  *os.File // readiness channel to the parent; nil in a first generation
	tfReady    *os.File // a tableflip parent's ready pipe, see tableflip.go; nil otherwise
	tfParent   *os.File // a tableflip parent's names pipe: EOF when it exits
	origStderr *os.File // stderr to restore at Ready; nil in a first generation
	stderrPipe *os.File // see ctlStderrPipe; nil once stderr is restored
	stderrOnce sync.Once
	goC        chan struct{} // closed when the parent says go, or is gone
	handshake  bool          // the parent says go and waits for live
	readyMu    sync.Mutex    // serialises Ready
	generation int
	parentGone chan struct{} // closed when the parent has exited
	parentPID  int
	elders     []*elder                         // older generations than the parent, see elders.go
	confirm    bool                             // the parent says main after live, see notify.go
	mainC      chan struct{}                    // closed when the parent has said main, or is gone
	mainSaid   bool                             // the parent said main; set before mainC is closed
	sd         *readiness.Notifier              // the service manager; nil without one
	watchdog   time.Duration                    // systemd's watchdog timeout; 0 without one
	wdCancel   func()                           // stops the watchdog pings on hand-over and waits; nil while none
	writePID   func(path string, pid int) error // pidfile.Write; a seam for tests

	exitOnce sync.Once
	exitC    chan struct{}
	stopOnce sync.Once
	stopC    chan struct{}

	started     time.Time
	controlLn   net.Listener           // Options.ControlSocket; nil without one
	lastUpgrade *control.UpgradeResult // guarded by mu
	drainedC    chan struct{}          // closed once every server has drained and the hooks ran

	hooks      []hook
	serving    int // servers that drain when Exit closes, see hooks.go
	beforeOnce sync.Once
	afterOnce  sync.Once

	mu        sync.Mutex
	files     []*handed // in creation order: the order of the child's fds
	keys      map[string]*handed
	ready     bool
	upgrading bool
	// upgradeDone is closed when the upgrade in flight has ended; nil
	// while none is.
	upgradeDone chan struct{}
	childCtl    *os.File // readiness channel of the generation we handed over to
	childPID    int
	stopped     bool
	main        bool // the service manager knows this process as the main one
}

// handed is one socket or file that is handed to each new generation.
type handed struct {
	name string
	conn syscall.Conn
	unix *net.UnixListener // non-nil for unix listeners: their path is not unlinked on hand-over
}

// New creates an Upgrader. In a process started by a handoff parent it
// adopts the inherited sockets, to be taken by [Upgrader.Listen] and
// friends. It fails before touching anything if the pidfile's directory
// is not usable or the inherited environment is malformed.
func New(opts Options) (*Upgrader, error) {
	in, err := fdpass.Inherit()
	if err != nil {
		if errors.Is(err, fdpass.ErrNotSupported) {
			return nil, ErrNotSupported
		}
		return nil, fmt.Errorf("upgrade: adopt inherited files: %w", err)
	}
	u := &Upgrader{
		inherited:  in,
		generation: 1,
		parentGone: make(chan struct{}),
		goC:        make(chan struct{}),
		mainC:      make(chan struct{}),
		drainedC:   make(chan struct{}),
		started:    time.Now(),
		exitC:      make(chan struct{}),
		stopC:      make(chan struct{}),
		keys:       make(map[string]*handed),
		writePID:   pidfile.Write,
	}
	if err := u.init(opts); err != nil {
		// A new generation that cannot start says why, so the parent's
		// Upgrade reports this error rather than a bare exit status.
		if u.parentCtl != nil {
			readiness.Fail(u.parentCtl, err.Error())
			u.parentCtl.Close()
		}
		if u.tfReady != nil {
			u.tfReady.Close() // the tableflip parent sees no ready byte
		}
		if u.origStderr != nil {
			u.origStderr.Close()
		}
		if u.stderrPipe != nil {
			u.stderrPipe.Close()
		}
		in.CloseUnclaimed()
		return nil, err
	}
	return u, nil
}

func (u *Upgrader) init(opts Options) error {
	switch {
	case u.inherited.FromHandoff():
		if err := u.adoptParent(); err != nil {
			return err
		}
	case u.inherited.FromTableflip():
		if err := u.adoptTableflip(); err != nil {
			return err
		}
	}
	o, err := opts.withDefaults()
	if err != nil {
		return err
	}
	u.opts, u.log = o, o.Logger
	u.initNotify()
	if o.PIDFile != "" {
		if err := pidfile.Check(o.PIDFile); err != nil {
			return fmt.Errorf("upgrade: %w", err)
		}
	}
	if err := u.resolveCommand(); err != nil {
		return err
	}
	if o.ControlSocket != "" {
		if err := u.listenControl(); err != nil {
			return err
		}
	}
	if u.parentCtl != nil {
		go u.watchParent()
		u.watchElders()
	}
	if u.tfParent != nil {
		go u.watchTableflip()
	}
	return nil
}

// resolveCommand fixes how the next generation is started.
func (u *Upgrader) resolveCommand() error {
	wd, err := os.Getwd()
	if err != nil {
		return fmt.Errorf("upgrade: working directory: %w", err)
	}
	u.dir = u.opts.Dir
	if u.dir == "" {
		u.dir = wd
	}
	u.args = u.opts.Args
	if u.args == nil {
		u.args = slices.Clone(os.Args)
	}
	u.env = u.opts.Env
	if u.env == nil {
		u.env = os.Environ()
	}
	u.env = fdpass.StripEnv(u.env)
	u.path = u.opts.Path
	if u.path == "" {
		u.path, err = startPath(wd)
		if err != nil {
			return err
		}
	}
	if !filepath.IsAbs(u.path) {
		u.path = filepath.Join(wd, u.path)
	}
	return nil
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
		if p, err := exec.LookPath(cand); err == nil {
			cand = p
		} else {
			return exe, nil
		}
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

// adoptParent takes the control files a handoff parent passed.
func (u *Upgrader) adoptParent() error {
	in := u.inherited
	ctl, err := in.Control(ctlReady)
	if err != nil {
		return fmt.Errorf("upgrade: the parent passed no readiness channel: %w", err)
	}
	u.parentCtl = ctl
	if f, err := in.Control(ctlStderr); err == nil {
		u.origStderr = f
	}
	if f, err := in.Control(ctlStderrPipe); err == nil {
		u.stderrPipe = f
	}
	u.parentPID = os.Getppid()
	if p, ok := in.Meta(metaPPID); ok {
		u.parentPID, _ = strconv.Atoi(p)
	}
	_, u.handshake = in.Meta(metaGo)
	_, u.confirm = in.Meta(metaNotify)
	u.adoptElders()
	if g, ok := in.Meta(metaGen); ok {
		n, err := strconv.Atoi(g)
		if err != nil || n < 2 {
			return fmt.Errorf("upgrade: the parent passed a malformed generation %q", g)
		}
		u.generation = n
	}
	return nil
}

// untilStop returns a context that ends when Stop is called.
func (u *Upgrader) untilStop() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-u.stopC:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// watchParent follows the parent through the readiness channel: goC is
// closed when the parent says go (or is gone), mainC when it says main
// (after it told systemd this process is the main one; at once when it
// has no service manager to tell) or is gone, parentGone when it has
// exited and its end is closed. Stop ends the watch.
func (u *Upgrader) watchParent() {
	ctx, cancel := u.untilStop()
	defer cancel()
	if u.handshake {
		err := readiness.WaitGo(ctx, u.parentCtl)
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, readiness.ErrClosed):
			// Gone before go: settle stderr and parentGone first, so
			// that Ready, released by goC, finds them settled.
			u.parentDied()
			close(u.goC)
			close(u.mainC)
			return
		case err != nil:
			u.log.Warn("the parent broke the readiness protocol; going on alone", slog.Any("error", err))
		}
	}
	close(u.goC)
	if u.confirm {
		err := readiness.WaitMain(ctx, u.parentCtl)
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, readiness.ErrClosed):
			u.parentDied()
			close(u.mainC)
			return
		case err != nil:
			u.log.Warn("the parent broke the readiness protocol; going on alone", slog.Any("error", err))
		default:
			u.mainSaid = true
		}
	}
	close(u.mainC)
	if readiness.WaitClosed(ctx, u.parentCtl) == nil {
		u.parentDied()
	}
}

// parentDied records that the parent has exited.
func (u *Upgrader) parentDied() {
	u.ownStderr(true) // the parent no longer reads our stderr pipe
	close(u.parentGone)
	u.parentCtl.Close() // nothing more to say to a parent that is gone
}

// ownStderr makes the parent's original stderr this process's fd 2, in
// place of the pipe to the parent. It runs once: when the parent says go,
// or earlier if the parent dies first, in which case (drain) it also
// copies out what the parent left unread in the pipe.
func (u *Upgrader) ownStderr(drain bool) {
	u.stderrOnce.Do(func() {
		if u.origStderr != nil {
			if err := restoreStderr(u.origStderr); err != nil {
				u.log.Warn("could not restore standard error; it still goes through the parent", slog.Any("error", err))
			}
		}
		if u.stderrPipe != nil {
			if drain && u.origStderr != nil {
				// A write blocked on a full pipe resumes once drained. Copy
				// through origStderr, not os.Stderr: a writer blocked on
				// the pipe holds os.Stderr's write lock. The wrappers keep
				// io.Copy off the file-to-file paths, which take it too.
				u.stderrPipe.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
				io.Copy(struct{ io.Writer }{u.origStderr}, struct{ io.Reader }{u.stderrPipe})
			}
			u.stderrPipe.Close()
		}
		if u.origStderr != nil {
			u.origStderr.Close()
		}
	})
}

// Generation is 1 for a process started by hand and one more than its
// parent's for each new generation.
func (u *Upgrader) Generation() int { return u.generation }

// HasParent reports whether this process was started as a new
// generation, by a handoff parent or by a tableflip one.
func (u *Upgrader) HasParent() bool { return u.parentCtl != nil || u.tfParent != nil }

// WaitForParent blocks until the parent that started this generation has
// exited (it learns so from the kernel closing the parent's end of a
// channel: nothing polls). It returns at once in a first generation, and
// ctx.Err() if ctx ends first. Call it before work that must not overlap
// with the old generation, such as opening an exclusive database.
func (u *Upgrader) WaitForParent(ctx context.Context) error {
	if !u.HasParent() {
		return nil
	}
	select {
	case <-u.parentGone:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Exit is closed when this process should stop serving: a new
// generation is ready, or Stop was called. Drain and exit then;
// [Upgrader.ServeHTTP] and [Upgrader.ServeConns] do it for you.
func (u *Upgrader) Exit() <-chan struct{} { return u.exitC }

func (u *Upgrader) exit() { u.exitOnce.Do(func() { close(u.exitC) }) }

// Ready says this generation can serve. It closes inherited files nobody
// took and, in a first generation, writes the pidfile. In a new
// generation it tells the parent, waits for the parent's go — at once, or
// after Options.Probation in the parent, during which the parent alone
// keeps serving and this process's death costs no request — then writes
// the pidfile and confirms, and the parent stops accepting and drains.
// Under systemd it also waits for the parent to say it has made this
// process the main one (see "systemd" in the package documentation). If
// the parent is gone, Ready does not wait for it. Once Ready returns,
// serve. Call it once all listeners are taken; calling it again does
// nothing. It returns ErrStopped if Stop is called meanwhile.
func (u *Upgrader) Ready() error {
	u.readyMu.Lock()
	defer u.readyMu.Unlock()
	u.mu.Lock()
	ready, stopped := u.ready, u.stopped
	u.mu.Unlock()
	switch {
	case ready:
		return nil
	case stopped:
		return ErrStopped
	}
	if names := u.inherited.CloseUnclaimed(); len(names) > 0 {
		u.log.Info("closed inherited files nobody asked for", slog.Any("names", names))
	}
	if err := u.takeOver(); err != nil {
		return err
	}
	u.mu.Lock()
	u.ready = true
	u.main = true
	handed := len(u.files)
	u.mu.Unlock()
	reserveFDs(handed)
	u.serveControl()
	u.log.Info("ready", slog.Int("pid", os.Getpid()), slog.Int("generation", u.generation))
	return nil
}

// takeOver makes this generation the live one: the pidfile, and in a new
// generation the exchange with the parent.
func (u *Upgrader) takeOver() error {
	if u.tfReady != nil {
		return u.tableflipTakeOver()
	}
	if u.parentCtl == nil {
		if err := u.writePIDFile(os.Getpid()); err != nil {
			return err
		}
		u.notify("READY=1", status("serving: generation %d, pid %d", u.generation, os.Getpid()))
		u.becomeMain(false)
		return nil
	}
	fail := func(err error) error {
		readiness.Fail(u.parentCtl, err.Error())
		return err
	}
	if !u.handshake {
		// A parent that does not say go hands over on "ready".
		if err := u.writePIDFile(os.Getpid()); err != nil {
			return fail(err)
		}
		u.ownStderr(false)
		u.tellParent(readiness.Ready)
		u.becomeMain(false)
		return nil
	}
	if u.opts.PIDFile != "" {
		// Fail before the parent's probation, not after.
		if err := pidfile.Check(u.opts.PIDFile); err != nil {
			return fail(fmt.Errorf("upgrade: %w", err))
		}
	}
	u.tellParent(readiness.Ready)
	select {
	case <-u.goC:
	case <-u.stopC:
		return ErrStopped
	}
	if err := u.writePIDFile(os.Getpid()); err != nil {
		return fail(err)
	}
	u.ownStderr(false)
	u.tellParent(readiness.Live)
	// Wait until the parent has told the service manager that this
	// process is the main one: before that, what this one sends would be
	// refused (systemd's default NotifyAccess=main).
	select {
	case <-u.mainC:
	case <-u.stopC:
		return ErrStopped
	}
	u.becomeMain(u.confirm && !u.mainSaid) // announce itself if the parent could not
	return nil
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

// tellParent sends a message; a parent that is gone no longer matters.
func (u *Upgrader) tellParent(send func(*os.File) error) {
	if err := send(u.parentCtl); err != nil {
		select {
		case <-u.parentGone:
			u.log.Info("the parent is gone; this generation is the live one")
		default:
			u.log.Warn("could not tell the parent", slog.Any("error", err))
		}
	}
}

// Fail tells the parent that this generation cannot start, and why; the
// parent's Upgrade returns a [*ChildError] carrying reason verbatim and
// the old generation keeps serving. The caller should exit afterwards. In
// a first generation, or after Ready, Fail does nothing but return nil.
func (u *Upgrader) Fail(reason error) error {
	u.mu.Lock()
	ready := u.ready
	u.mu.Unlock()
	if ready {
		return nil // too late: this generation is the live one
	}
	if u.tfReady != nil {
		// tableflip's protocol has no reason: the pipe closes without a
		// ready byte, and the parent learns of the failure when this
		// process exits.
		return u.tfReady.Close()
	}
	if u.parentCtl == nil {
		return nil
	}
	if reason == nil {
		reason = errors.New("no reason given")
	}
	return readiness.Fail(u.parentCtl, reason.Error())
}

// Stop ends this generation's life as an upgrader: an upgrade in flight is
// cancelled and Stop waits until its child has been stopped and reaped;
// then Exit is closed so that servers drain, and, unless a new generation
// has taken over, the pidfile is removed and unix socket paths are
// unlinked when their listeners close. Stop may be called more than once.
func (u *Upgrader) Stop() {
	u.stopOnce.Do(func() {
		u.mu.Lock()
		u.stopped = true
		inFlight := u.upgradeDone
		u.mu.Unlock()
		close(u.stopC)
		if inFlight != nil {
			select {
			case <-inFlight:
			case <-time.After(2*u.opts.StopGrace + time.Second):
				u.log.Warn("stop: the upgrade in flight did not end in time")
			}
		}
		u.mu.Lock()
		final := u.childPID == 0
		main := u.main
		u.mu.Unlock()
		if final && main {
			u.notify("STOPPING=1", status("stopping: draining generation %d, pid %d", u.generation, os.Getpid()))
		}
		u.mu.Lock()
		if final {
			for _, h := range u.files {
				if h.unix != nil {
					h.unix.SetUnlinkOnClose(true)
				}
			}
		}
		u.mu.Unlock()
		if final && u.opts.PIDFile != "" {
			if err := pidfile.Remove(u.opts.PIDFile, os.Getpid()); err != nil && !errors.Is(err, pidfile.ErrNotOwner) {
				u.log.Warn("could not remove pidfile", slog.String("path", u.opts.PIDFile), slog.Any("error", err))
			}
		}
		u.exit()
	})
}
