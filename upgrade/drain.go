package upgrade

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// drain is the end of a generation: the servers that drain when Exit
// closes, and the shutdown hooks around them. BeforeDrain hooks run
// before Exit closes; once Exit has closed and the last server has left,
// the AfterDrain hooks run and doneC closes: the process may exit.
type drain struct {
	log     *slog.Logger
	exitC   <-chan struct{}
	timeout time.Duration // a hook's default timeout, Options.DrainTimeout
	// patience bounds how long a drained server waits for the others:
	// every drain is itself bounded by DrainTimeout and StopGrace.
	patience time.Duration
	doneC    chan struct{} // closed once every server drained and the AfterDrain hooks ran

	mu      sync.Mutex
	serving int // servers that drain when exitC closes
	before  []hook
	after   []hook
	began   bool // the BeforeDrain hooks have run (or are running)
	done    bool // the AfterDrain hooks have run (or are running)
}

// hook is one registered shutdown hook.
type hook struct {
	name    string
	timeout time.Duration
	fn      func(context.Context) error
}

// BeforeDrain registers fn to run when this generation's end begins — a
// new generation is live, or Stop was called — before Exit closes and
// servers stop accepting: deregister from service discovery, say, while
// this process still serves. They run only in a generation that served
// (Ready returned): a new generation that failed leaves its parent's
// registrations alone. Hooks run one after another in the order
// registered, each with a context that ends after timeout (zero:
// Options.DrainTimeout); one that fails or overruns is logged and the next
// runs. A hook registered after its time has come does not run.
func (u *Upgrader) BeforeDrain(name string, timeout time.Duration, fn func(ctx context.Context) error) {
	u.drain.register(&u.drain.before, &u.drain.began, "BeforeDrain", name, timeout, fn)
}

// AfterDrain registers fn to run once every server has drained, before
// Serve, ServeConns and Hold.Done return: flush buffers, close connections
// to backends. Hooks run as BeforeDrain's do.
func (u *Upgrader) AfterDrain(name string, timeout time.Duration, fn func(ctx context.Context) error) {
	u.drain.register(&u.drain.after, &u.drain.done, "AfterDrain", name, timeout, fn)
}

func (d *drain) register(list *[]hook, ran *bool, phase, name string, timeout time.Duration, fn func(context.Context) error) {
	if timeout <= 0 {
		timeout = d.timeout
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if *ran {
		d.log.Warn("shutdown hook registered too late to run", slog.String("phase", phase), slog.String("hook", name))
		return
	}
	*list = append(*list, hook{name: name, timeout: timeout, fn: fn})
}

// Hold is the place of a server that drains by its own means in this
// generation's end, for what Serve and ServeConns cannot run: a queue
// consumer, a server that manages its own listeners. Take it when the
// server starts, watch Exit, drain, and call Done.
//
//	h := u.Hold()
//	go func() {
//		defer h.Done()
//		<-u.Exit()
//		consumer.Stop() // finish what was taken, take nothing more
//	}()
//
// Counted from Hold on, the server keeps the process from finishing its
// drain (the AfterDrain hooks, the return of Serve in main) until Done.
type Hold struct {
	d    *drain
	once sync.Once
}

// Hold counts a server that drains by itself from now on; see [Hold].
func (u *Upgrader) Hold() *Hold {
	u.drain.enter()
	return &Hold{d: &u.drain}
}

// Done says the server has drained, or stopped before Exit closed. After
// Exit it returns once every server has drained and the AfterDrain hooks
// have run, so the process may exit then; before Exit, at once. Calls
// after the first do nothing.
func (h *Hold) Done() { h.once.Do(h.d.leave) }

// enter counts a server that will drain when Exit closes.
func (d *drain) enter() {
	d.mu.Lock()
	d.serving++
	d.mu.Unlock()
}

// leave uncounts a server; the last to leave after Exit runs the
// AfterDrain hooks. After Exit it returns with the others, so that main
// does not return under a server still draining (the control socket
// delivering a verdict, say).
func (d *drain) leave() {
	d.mu.Lock()
	d.serving--
	d.mu.Unlock()
	select {
	case <-d.exitC:
	default:
		return // a server that stopped before any drain
	}
	d.finishIfIdle()
	select {
	case <-d.doneC:
	case <-time.After(d.patience):
		d.log.Warn("a server is still draining past the drain deadline; returning without it")
	}
}

// begin runs the BeforeDrain hooks, once; exitC closes after it.
func (d *drain) begin() {
	d.mu.Lock()
	d.began = true
	hooks := d.before
	d.mu.Unlock()
	d.run("before-drain", hooks)
}

// skip marks the BeforeDrain hooks as passed without running them.
func (d *drain) skip() {
	d.mu.Lock()
	d.began = true
	d.mu.Unlock()
}

// exited is called once exitC has closed: with no server to wait for,
// the drain is over at once.
func (d *drain) exited() { d.finishIfIdle() }

// finishIfIdle runs the AfterDrain hooks and closes doneC, once, when
// no server is left.
func (d *drain) finishIfIdle() {
	d.mu.Lock()
	if d.serving > 0 || d.done {
		d.mu.Unlock()
		return
	}
	d.done = true
	hooks := d.after
	d.mu.Unlock()
	d.run("after-drain", hooks)
	close(d.doneC)
}

func (d *drain) run(phase string, hooks []hook) {
	for _, h := range hooks {
		ctx, cancel := context.WithTimeout(context.Background(), h.timeout)
		res := make(chan error, 1)
		start := time.Now()
		go func() { res <- h.fn(ctx) }()
		attrs := []any{slog.String("phase", phase), slog.String("hook", h.name)}
		select {
		case err := <-res:
			if err != nil {
				d.log.Warn("shutdown hook failed", append(attrs, slog.Any("error", err))...)
			} else {
				d.log.Debug("shutdown hook done", append(attrs, slog.Duration("took", time.Since(start)))...)
			}
		case <-ctx.Done():
			d.log.Warn("shutdown hook overran its timeout; going on without it", append(attrs, slog.Duration("timeout", h.timeout))...)
		}
		cancel()
	}
}
