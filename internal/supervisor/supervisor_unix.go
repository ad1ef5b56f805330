//go:build unix

package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/handoff-go/handoff/internal/control"
	"github.com/handoff-go/handoff/internal/starter"
	"github.com/handoff-go/handoff/internal/tail"
	"github.com/handoff-go/handoff/pidfile"
	"github.com/handoff-go/handoff/readiness"
)

// Backoff of restarts after crashes: the first restart waits minBackoff,
// each crash in a row doubles the wait up to maxBackoff, and a worker that
// served for resetAfter starts the count again.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 10 * time.Second
	resetAfter = 30 * time.Second
)

// killAfter is how long a worker that failed to become ready gets between
// SIGTERM and SIGKILL.
const killAfter = 5 * time.Second

// sock is one bound socket.
type sock struct {
	l    Listen
	conn interface {
		syscall.Conn
		io.Closer
	}
}

// Supervisor runs workers on sockets it holds. It implements
// [control.Handler].
type Supervisor struct {
	cfg  Config
	log  *slog.Logger
	quit chan struct{} // closed when Run starts to stop

	// socks are set by Run before the first worker starts.
	socks     []sock
	crashed   chan *worker // the current worker died on its own
	restarted chan control.UpgradeResult

	mu         sync.Mutex
	ran        bool
	startedAt  time.Time
	stopping   bool
	upgrading  bool
	current    *worker   // the ready worker that serves
	launching  *worker   // the worker an upgrade or restart waits for
	draining   []*worker // old workers told to stop, not yet reaped
	generation int
	last       *control.UpgradeResult

	sd       *readiness.Notifier // systemd, when NOTIFY_SOCKET is set; nil otherwise
	watchdog time.Duration       // systemd's watchdog timeout; 0 without one

	// spawnMu is held while a worker is started and registered, and
	// while orphans are reaped, so that the reaper never takes a worker
	// (its own Wait reaps it) for an orphan.
	spawnMu sync.Mutex
	workers map[int]bool // PIDs of workers not yet reaped
}

var _ control.Handler = (*Supervisor)(nil)

// New checks cfg and returns a Supervisor for it. Errors wrap [ErrConfig].
func New(cfg Config) (*Supervisor, error) {
	c, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	s := &Supervisor{
		cfg:       c,
		log:       c.Logger,
		quit:      make(chan struct{}),
		crashed:   make(chan *worker),
		restarted: make(chan control.UpgradeResult),
	}
	// The supervisor is the service's main process for good: it reports to
	// systemd itself (its workers notify the supervisor instead, each on a
	// private socket of its own).
	if s.sd, err = readiness.NewNotifier(os.Getenv("NOTIFY_SOCKET")); err != nil {
		s.log.Warn("supervisor: not reporting to the service manager", slog.Any("error", err))
	}
	if s.sd != nil {
		if s.watchdog, err = readiness.WatchdogTimeout(); err != nil {
			s.log.Warn("supervisor: watchdog disabled", slog.Any("error", err))
		}
	}
	return s, nil
}

// told logs what went wrong telling systemd (s.sd's methods; a nil
// Notifier, without systemd, sends nothing).
func (s *Supervisor) told(err error) {
	if err != nil {
		s.log.Warn("supervisor: could not notify the service manager", slog.Any("error", err))
	}
}

// Run binds the sockets, starts the first worker and waits until it is
// ready (bounded by UpgradeTimeout), writes the pidfile, serves the control
// socket, and supervises: upgrades on SIGHUP, SIGUSR2 and [Supervisor.Upgrade],
// restarts crashed workers. When ctx ends or SIGTERM or SIGINT arrives it
// stops the workers (SIGTERM, SIGKILL after DrainTimeout), removes the
// pidfile and control socket, and returns nil if the worker exited 0 or by
// that SIGTERM, or an [*ExitError] with its status. A first worker that
// does not become ready is an error.
func (s *Supervisor) Run(ctx context.Context) (err error) {
	s.mu.Lock()
	if s.ran {
		s.mu.Unlock()
		return errors.New("supervisor: Run called twice: a Supervisor runs once")
	}
	s.ran = true
	s.startedAt = time.Now()
	s.mu.Unlock()

	if s.cfg.PIDFile != "" {
		if err := pidfile.Check(s.cfg.PIDFile); err != nil {
			return err
		}
	}
	if err := s.bind(ctx); err != nil {
		return err
	}
	defer s.unbind()

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, append([]os.Signal{syscall.SIGHUP, syscall.SIGUSR2, syscall.SIGTERM, syscall.SIGINT}, forwarded...)...)
	defer signal.Stop(sigs)
	sigDone := make(chan struct{})
	defer close(sigDone)
	go s.signals(sigs, sigDone)
	if s.cfg.Reaper {
		stopReaper := s.reapOrphans()
		defer stopReaper()
	}
	defer context.AfterFunc(ctx, s.stop)()

	if s.watchdog > 0 {
		wdCtx, stopWatchdog := context.WithCancel(context.Background())
		defer stopWatchdog()
		go s.sd.Watchdog(wdCtx, s.watchdog, func(err error) {
			s.log.Warn("supervisor: could not ping the systemd watchdog", slog.Any("error", err))
		})
	}
	first := s.launch(context.Background(), nil)
	if !first.OK {
		s.shutdown()
		return fmt.Errorf("supervisor: the first worker did not start: %s", first.Error)
	}
	s.log.Info("supervisor: worker ready", slog.Int("worker", first.NewPID), slog.Float64("took_ms", first.TookMS))

	// The control socket first: a deploy script that sees the pidfile
	// may use it at once.
	if s.cfg.Control != "" {
		stopControl, err := s.serveControl()
		if err != nil {
			s.shutdown()
			return err
		}
		defer stopControl()
	}
	if s.cfg.PIDFile != "" {
		if err := pidfile.Write(s.cfg.PIDFile, os.Getpid()); err != nil {
			s.shutdown()
			return err
		}
		defer func() {
			if err := pidfile.Remove(s.cfg.PIDFile, os.Getpid()); err != nil {
				s.log.Warn("supervisor: removing the pidfile", slog.Any("error", err))
			}
		}()
	}
	s.told(s.sd.Ready(fmt.Sprintf("serving: worker %d", first.NewPID)))
	return s.loop()
}

// loop supervises until the supervisor stops.
func (s *Supervisor) loop() error {
	backoff := minBackoff
	var restart <-chan time.Time
	for {
		select {
		case <-s.quit:
			s.told(s.sd.Stopping("stopping: draining worker"))
			return s.shutdown()
		case w := <-s.crashed:
			code, sig := w.status()
			up := time.Since(w.started)
			s.log.Error("supervisor: worker died on its own", slog.Int("worker", w.pid), slog.Int("exit_code", code),
				slog.String("signal", sigName(sig)), slog.Duration("uptime", up), slog.String("on_crash", s.cfg.OnCrash.String()))
			if s.cfg.OnCrash == CrashExit {
				s.stop()
				s.shutdown()
				return exitError(w, true)
			}
			if up >= resetAfter {
				backoff = minBackoff
			}
			restart = time.After(backoff)
			s.log.Info("supervisor: restarting the worker", slog.Duration("after", backoff))
			s.told(s.sd.Status(fmt.Sprintf("worker %d died (%s); restarting in %v", w.pid, starter.How(w.proc.State()), backoff)))
			backoff = min(2*backoff, maxBackoff)
		case <-restart:
			restart = nil
			go func() {
				res := s.launch(context.Background(), nil)
				select {
				case s.restarted <- res:
				case <-s.quit:
				}
			}()
		case res := <-s.restarted:
			s.mu.Lock()
			serving := s.current != nil
			s.mu.Unlock()
			if res.OK || serving {
				if res.OK {
					s.log.Info("supervisor: worker restarted", slog.Int("worker", res.NewPID))
					s.told(s.sd.Status(fmt.Sprintf("serving: worker %d (restarted after a crash)", res.NewPID)))
				}
				continue
			}
			s.log.Error("supervisor: restart failed", slog.String("error", res.Error), slog.Duration("retry_after", backoff))
			restart = time.After(backoff)
			backoff = min(2*backoff, maxBackoff)
		}
	}
}

// signals carries out the signals until done is closed.
func (s *Supervisor) signals(sigs <-chan os.Signal, done <-chan struct{}) {
	for {
		select {
		case <-done:
			return
		case sig := <-sigs:
			switch sig {
			case syscall.SIGTERM, syscall.SIGINT:
				s.log.Info("supervisor: stopping", slog.String("signal", sig.String()))
				s.stop()
			case syscall.SIGHUP, syscall.SIGUSR2:
				go func() {
					s.log.Info("supervisor: upgrade requested", slog.String("signal", sig.String()))
					s.Upgrade(context.Background())
				}()
			default:
				s.forward(sig)
			}
		}
	}
}

// forwarded are the signals the supervisor passes on to the worker that
// serves, as an init does for its program (docker kill -s USR1, say).
var forwarded = []os.Signal{syscall.SIGUSR1, syscall.SIGQUIT, syscall.SIGWINCH}

// forward passes sig on to the worker that serves, if there is one.
func (s *Supervisor) forward(sig os.Signal) {
	s.mu.Lock()
	w := s.current
	s.mu.Unlock()
	if w == nil {
		s.log.Info("supervisor: no worker to forward a signal to", slog.String("signal", sig.String()))
		return
	}
	if err := w.proc.Signal(sig); err != nil {
		s.log.Warn("supervisor: could not forward a signal", slog.String("signal", sig.String()), slog.Int("worker", w.pid), slog.Any("error", err))
	}
}

// stop starts the supervisor's end; safe to call more than once.
func (s *Supervisor) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.stopping {
		s.stopping = true
		close(s.quit)
	}
}

// shutdown stops every worker (SIGTERM, SIGKILL after DrainTimeout), waits
// until all are reaped, and returns how the serving worker ended.
func (s *Supervisor) shutdown() error {
	s.stop()
	s.mu.Lock()
	cur := s.current
	all := slices.Clone(s.draining)
	if cur != nil {
		all = append(all, cur)
	}
	if s.launching != nil {
		all = append(all, s.launching)
	}
	s.mu.Unlock()
	for _, w := range all {
		w.terminate(s.cfg.DrainTimeout)
	}
	for _, w := range all {
		<-w.proc.Settled() // its notify socket removed, its stderr read
	}
	if cur == nil {
		return nil
	}
	s.log.Info("supervisor: worker stopped", slog.Int("worker", cur.pid), slog.String("how", starter.How(cur.proc.State())))
	if code, sig := cur.status(); code == 0 || sig == syscall.SIGTERM {
		return nil
	}
	return exitError(cur, false)
}

func exitError(w *worker, crash bool) *ExitError {
	code, sig := w.status()
	e := &ExitError{PID: w.pid, Code: code, Crash: crash}
	if sig != 0 {
		e.Code, e.Signal = 1, sig.String()
	}
	return e
}

func sigName(sig syscall.Signal) string {
	if sig == 0 {
		return ""
	}
	return sig.String()
}

// reaped is called once w has exited.
func (s *Supervisor) reaped(w *worker) {
	s.mu.Lock()
	crash := w == s.current && !w.stopped.Load() && !s.stopping
	if w == s.current {
		s.current = nil
	}
	s.draining = slices.DeleteFunc(s.draining, func(o *worker) bool { return o == w })
	s.mu.Unlock()
	if !crash {
		if w.stopped.Load() {
			w.log.Info("supervisor: worker exited", slog.String("how", starter.How(w.proc.State())))
		}
		return
	}
	select {
	case s.crashed <- w:
	case <-s.quit:
	}
}

// Upgrade starts a new worker on the same sockets and waits until it is
// ready, then tells the old one to stop (SIGTERM, SIGKILL after
// DrainTimeout). A new worker that exits before it is ready, or is not
// ready within UpgradeTimeout, is stopped and reaped, and the old one keeps
// serving. Only one upgrade runs at a time: a request during another, or
// once the supervisor is stopping, is refused at once (Refused, with Error
// saying why; nothing is started). ctx ending abandons the upgrade
// (Stage [control.StageCanceled]).
func (s *Supervisor) Upgrade(ctx context.Context) control.UpgradeResult {
	// RELOADING=1 once the upgrade has begun: a refused one is no reload.
	res := s.launch(ctx, func() { s.told(s.sd.Reloading("upgrading: starting a new worker")) })
	switch {
	case res.Refused:
		s.log.Warn("supervisor: upgrade refused", slog.String("error", res.Error))
		return res
	case res.OK:
		s.log.Info("supervisor: upgraded", slog.Int("old", res.OldPID), slog.Int("new", res.NewPID), slog.Float64("took_ms", res.TookMS))
		s.told(s.sd.Ready(fmt.Sprintf("serving: worker %d (upgraded from worker %d)", res.NewPID, res.OldPID)))
	default:
		s.log.Error("supervisor: upgrade failed", slog.String("error", res.Error))
		s.told(s.sd.Ready("upgrade failed: " + res.Error))
	}
	s.mu.Lock()
	s.last = &res
	s.mu.Unlock()
	return res
}

// launch starts a worker and makes it the current one once it is ready:
// the first start, an upgrade, or a restart after a crash. began, if not
// nil, is called once the launch is sure to go ahead.
func (s *Supervisor) launch(ctx context.Context, began func()) (res control.UpgradeResult) {
	start := time.Now()
	res.StartedAt = start
	s.mu.Lock()
	if s.current != nil {
		res.OldPID = s.current.pid
	}
	switch {
	case s.stopping:
		s.mu.Unlock()
		res.Refused, res.Error = true, "supervisor: stopping; no new worker is started"
		return res
	case s.upgrading:
		s.mu.Unlock()
		res.Refused, res.Error = true, "supervisor: an upgrade is already in progress; try again when it is done"
		return res
	}
	s.upgrading = true
	s.mu.Unlock()
	if began != nil {
		began()
	}
	defer func() {
		s.mu.Lock()
		s.upgrading = false
		s.mu.Unlock()
		res.TookMS = float64(time.Since(start).Microseconds()) / 1000
	}()
	keeps := "; the old worker keeps serving"
	if res.OldPID == 0 {
		keeps = ""
	}

	w, err := s.startWorker()
	if err != nil {
		res.Stage, res.Error = control.StageStart, err.Error()+keeps
		return res
	}
	res.NewPID = w.pid
	s.mu.Lock()
	stopping := s.stopping
	s.launching = w
	s.mu.Unlock()
	// fail stops w if it still runs and fills in res.
	fail := func(stage, what string) control.UpgradeResult {
		if stage != control.StageExited {
			w.terminate(killAfter)
		}
		<-w.proc.Settled() // all it said, on its notify socket and its stderr
		s.mu.Lock()
		if s.launching == w {
			s.launching = nil
		}
		s.mu.Unlock()
		code, sig := w.status()
		if sig != 0 {
			res.Signal = sig.String()
		} else if code >= 0 {
			res.ExitCode = &code
		}
		res.Stage = stage
		res.Stderr = w.proc.StderrTail()
		if stage != control.StageExited {
			what += " (it ended " + starter.How(w.proc.State()) + ")"
		}
		msg := fmt.Sprintf("supervisor: new worker %d (%s) %s", w.pid, strings.Join(s.cfg.Program, " "), what)
		if st := w.proc.Status(); st != "" {
			msg += " (its last status: " + st + ")"
		}
		if t := tail.Excerpt(res.Stderr); t != "" {
			msg += " (stderr tail: " + t + ")"
		}
		res.Error = msg + keeps
		return res
	}
	if stopping {
		return fail(control.StageCanceled, "was stopped because the supervisor is stopping")
	}

	timer := time.NewTimer(s.cfg.UpgradeTimeout)
	defer timer.Stop()
	readyHow := "send READY=1 to NOTIFY_SOCKET"
	if s.cfg.ReadyDelay > 0 {
		readyHow = fmt.Sprintf("stay up for %v", s.cfg.ReadyDelay)
	}
	select {
	case <-w.proc.Ready():
		select {
		case <-w.proc.Exited(): // said ready, and died
			return fail(control.StageExited, "said it was ready, then exited "+starter.How(w.proc.State()))
		default:
		}
	case <-w.proc.Exited():
		return fail(control.StageExited, "exited "+starter.How(w.proc.State())+" before it was ready")
	case <-timer.C:
		return fail(control.StageTimeout, fmt.Sprintf("did not %s within %v and was stopped", readyHow, s.cfg.UpgradeTimeout))
	case <-ctx.Done():
		return fail(control.StageCanceled, fmt.Sprintf("was stopped before it was ready: %v", ctx.Err()))
	case <-s.quit:
		return fail(control.StageCanceled, "was stopped before it was ready because the supervisor is stopping")
	}

	s.mu.Lock()
	if s.stopping {
		// shutdown stops it as s.launching.
		s.mu.Unlock()
		res.Stage, res.Error = control.StageCanceled, "supervisor: stopping; the new worker is stopped too"
		return res
	}
	old := s.current
	s.current, s.launching = w, nil
	s.generation++
	if old != nil {
		s.draining = append(s.draining, old)
	}
	s.mu.Unlock()
	if old != nil {
		res.OldPID = old.pid
		old.terminate(s.cfg.DrainTimeout)
	}
	res.OK = true
	return res
}

// Status describes the supervisor, for the control socket.
func (s *Supervisor) Status() control.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := control.Status{
		PID:        os.Getpid(),
		Supervisor: true,
		Generation: s.generation,
		StartedAt:  s.startedAt,
		Listeners:  make([]string, 0, len(s.cfg.Listen)),
		Draining:   []int{},
	}
	if s.current != nil {
		st.WorkerPID = s.current.pid
	}
	for _, l := range s.cfg.Listen {
		st.Listeners = append(st.Listeners, l.Name())
	}
	for _, w := range s.draining {
		st.Draining = append(st.Draining, w.pid)
	}
	if s.last != nil {
		r := *s.last
		st.LastUpgrade = &r
	}
	return st
}

// bind binds every socket of the config.
func (s *Supervisor) bind(ctx context.Context) error {
	var lc net.ListenConfig
	for _, l := range s.cfg.Listen {
		var c sock
		c.l = l
		var err error
		if l.stream() {
			var ln net.Listener
			ln, err = lc.Listen(ctx, l.Network, l.Addr)
			if err == nil {
				c.conn = ln.(interface {
					net.Listener
					syscall.Conn
				})
				s.log.Info("supervisor: listening", slog.String("name", l.Name()), slog.String("addr", ln.Addr().String()))
			}
		} else {
			var pc net.PacketConn
			pc, err = lc.ListenPacket(ctx, l.Network, l.Addr)
			if err == nil {
				c.conn = pc.(interface {
					net.PacketConn
					syscall.Conn
				})
				s.log.Info("supervisor: listening", slog.String("name", l.Name()), slog.String("addr", pc.LocalAddr().String()))
			}
		}
		if err != nil {
			s.unbind()
			if strings.HasPrefix(l.Network, "unix") && errors.Is(err, syscall.EADDRINUSE) {
				return fmt.Errorf("supervisor: listen %s: %w (if no process serves it, the socket file is stale: remove it)", l, err)
			}
			return fmt.Errorf("supervisor: listen %s: %w", l, err)
		}
		s.socks = append(s.socks, c)
	}
	return nil
}

// unbind closes the sockets; unix socket files are removed.
func (s *Supervisor) unbind() {
	for _, c := range s.socks {
		c.conn.Close() // unlinks a unix listener's path
		if c.l.Network == "unixgram" {
			os.Remove(c.l.Addr)
		}
	}
	s.socks = nil
}

// serveControl serves the control protocol on cfg.Control and returns the
// function that stops it and removes the socket.
func (s *Supervisor) serveControl() (func(), error) {
	path := s.cfg.Control
	ln, err := control.Listen(path)
	if err != nil && errors.Is(err, syscall.EADDRINUSE) {
		// A stale socket from a supervisor that died: remove it, unless
		// something still answers on it.
		if c, derr := net.DialTimeout("unix", path, time.Second); derr == nil {
			c.Close()
			return nil, fmt.Errorf("supervisor: control socket %s is in use by another process: stop it or choose another path", path)
		}
		os.Remove(path)
		ln, err = control.Listen(path)
	}
	if err != nil {
		return nil, fmt.Errorf("supervisor: control socket: %w", err)
	}
	srv := &control.Server{Handler: s, Logger: s.log}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil {
			s.log.Error("supervisor: control socket", slog.Any("error", err))
		}
	}()
	return func() {
		ln.Close()
		os.Remove(path)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
		}
	}, nil
}

// Rollback is not offered by the supervisor: it restarts a worker that
// fails, and its upgrades keep the old worker until the new one is ready.
func (s *Supervisor) Rollback(ctx context.Context, reason string) control.RollbackResult {
	return control.RollbackResult{PID: os.Getpid(), Error: "handoff run does not roll back: upgrade to the previous build instead"}
}
