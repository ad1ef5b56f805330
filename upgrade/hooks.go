package upgrade

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// Phase says when a shutdown hook runs.
type Phase int

// The phases of a generation's end, in order. They run on a hand-over to a
// new generation and on a plain stop alike.
const (
	// BeforeDrain hooks run when Exit has closed, before servers stop
	// accepting: deregister from service discovery, say, while this
	// process still serves.
	BeforeDrain Phase = iota
	// AfterDrain hooks run once every server has drained: flush
	// buffers, close connections to backends.
	AfterDrain
	// BeforeExit hooks run after the AfterDrain hooks: last words.
	BeforeExit
)

func (p Phase) String() string {
	switch p {
	case BeforeDrain:
		return "before-drain"
	case AfterDrain:
		return "after-drain"
	case BeforeExit:
		return "before-exit"
	}
	return "unknown"
}

// hook is one registered shutdown hook.
type hook struct {
	phase   Phase
	name    string
	timeout time.Duration
	fn      func(context.Context) error
}

// OnShutdown registers fn to run in phase p when this generation ends.
// Hooks of a phase run one after another in the order registered, each
// with a context that ends after timeout (zero: Options.DrainTimeout); a
// hook that fails or overruns is logged and the next one runs. The
// phases are run by [Upgrader.ServeHTTP] and [Upgrader.ServeConns], or by
// [Upgrader.Draining] for servers that drain themselves.
func (u *Upgrader) OnShutdown(p Phase, name string, timeout time.Duration, fn func(ctx context.Context) error) {
	if timeout <= 0 {
		timeout = u.opts.DrainTimeout
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.hooks = append(u.hooks, hook{phase: p, name: name, timeout: timeout, fn: fn})
}

// Draining is for a server that drains by itself: call it once Exit is
// closed (earlier, it would run the BeforeDrain hooks early). It runs the
// BeforeDrain hooks (once per process; a concurrent caller waits
// for them) and returns done, to call when the drain is over. done
// returns when every drain in progress (ServeHTTP, ServeConns and the
// control socket count too) is over, after the AfterDrain and then
// BeforeExit hooks: the process may exit then. In a process that also
// serves with ServeHTTP or ServeConns, use [Upgrader.Hold] instead, from
// the moment the server starts.
func (u *Upgrader) Draining() (done func()) {
	return u.Hold()()
}

// Hold is Draining in two steps, for a server that drains by itself in a
// process that also serves with ServeHTTP or ServeConns: call Hold when
// the server starts, so that it is counted from then on and a fast drain
// of the others cannot end the process under it; once Exit is closed,
// call drain, which runs the BeforeDrain hooks and returns done, as
// Draining does. A server that stops before Exit calls drain()() at once
// (no hooks run then).
func (u *Upgrader) Hold() (drain func() (done func())) {
	leave := u.enterServe()
	return func() func() {
		select {
		case <-u.Exit():
			u.beforeDrain()
		default: // the server failed on its own: not a drain
		}
		return leave
	}
}

// Options returns the options in effect: the ones given to [New], with
// each zero duration or count replaced by what it means
// (Options.DrainTimeout 30s, say); Path, Args, Env and Dir as given. A
// server that bounds its own drain reads its deadline here.
func (u *Upgrader) Options() Options {
	o := u.opts
	o.Args, o.Env = slices.Clone(o.Args), slices.Clone(o.Env)
	o.UpgradeSignals, o.StopSignals = slices.Clone(o.UpgradeSignals), slices.Clone(o.StopSignals)
	return o
}

// enterServe counts a server that will drain when Exit closes.
func (u *Upgrader) enterServe() (leave func()) {
	u.mu.Lock()
	u.serving++
	u.mu.Unlock()
	var once sync.Once
	return func() { once.Do(u.leaveServe) }
}

// leaveServe uncounts a server; the last to leave after Exit runs the
// AfterDrain and BeforeExit hooks.
func (u *Upgrader) leaveServe() {
	u.mu.Lock()
	u.serving--
	last := u.serving == 0
	u.mu.Unlock()
	select {
	case <-u.Exit():
	default:
		return // a server that failed before any drain
	}
	if last {
		u.afterOnce.Do(func() {
			u.runHooks(AfterDrain)
			u.runHooks(BeforeExit)
			close(u.drainedC)
		})
		return
	}
	// Return with the others, so that main does not exit under a server
	// still draining (the control socket delivering a verdict, say). Every
	// drain is itself bounded by DrainTimeout and StopGrace.
	select {
	case <-u.drainedC:
	case <-time.After(u.opts.DrainTimeout + u.opts.StopGrace + time.Second):
		u.log.Warn("a server is still draining past the drain deadline; returning without it")
	}
}

// beforeDrain runs the BeforeDrain hooks once.
func (u *Upgrader) beforeDrain() {
	u.beforeOnce.Do(func() { u.runHooks(BeforeDrain) })
}

func (u *Upgrader) runHooks(p Phase) {
	u.mu.Lock()
	hooks := make([]hook, 0, len(u.hooks))
	for _, h := range u.hooks {
		if h.phase == p {
			hooks = append(hooks, h)
		}
	}
	u.mu.Unlock()
	for _, h := range hooks {
		ctx, cancel := context.WithTimeout(context.Background(), h.timeout)
		res := make(chan error, 1)
		start := time.Now()
		go func() { res <- h.fn(ctx) }()
		attrs := []any{slog.String("phase", p.String()), slog.String("hook", h.name)}
		select {
		case err := <-res:
			if err != nil {
				u.log.Warn("shutdown hook failed", append(attrs, slog.Any("error", err))...)
			} else {
				u.log.Debug("shutdown hook done", append(attrs, slog.Duration("took", time.Since(start)))...)
			}
		case <-ctx.Done():
			u.log.Warn("shutdown hook overran its timeout; going on without it", append(attrs, slog.Duration("timeout", h.timeout))...)
		}
		cancel()
	}
}
