//go:build unix

package upgrade

import (
	"log/slog"
	"os"
	"strings"

	"github.com/handoff-go/handoff/fdpass"
	"github.com/handoff-go/handoff/internal/starter"
	"github.com/handoff-go/handoff/internal/wire"
)

// startForeign starts a next generation that is not a handoff program
// (Options.ForeignChild), as systemd would: its sockets as socket
// activation hands them, LISTEN_PID included, no handoff control files,
// its stderr straight to ours, and a private NOTIFY_SOCKET on which its
// READY=1 counts as "ready" (see relay).
func (u *Upgrader) startForeign(files []*handed) (*child, error) {
	named := make([]fdpass.Named, len(files))
	for i, f := range files {
		named[i] = fdpass.Named{Name: f.name, Conn: f.conn}
	}
	// The child's notifications reach only the relay, which ends at
	// hand-over: it cannot ping systemd's watchdog, so it is not told of one.
	if u.sd.watchdog > 0 {
		u.log.Warn("a foreign child cannot ping the systemd watchdog after the hand-over; set WatchdogSec only for handoff programs")
	}
	env, err := u.nextEnv()
	if err != nil {
		return nil, &ChildError{Stage: StageStart, Err: err}
	}
	p, err := starter.Start(starter.Config{
		Path:   u.next.path,
		Args:   u.next.args[1:],
		Env:    env,
		Dir:    u.next.dir,
		Files:  named,
		Stdout: os.Stdout,
		Stderr: os.Stderr,
		Logger: u.log,
	})
	if err != nil {
		return nil, &ChildError{Stage: StageStart, Err: err}
	}
	ctl, agent, err := wire.Pair()
	if err != nil {
		p.Stop(u.opts.StopGrace)
		<-p.Settled()
		return nil, &ChildError{PID: p.PID(), Stage: StageStart, Err: err}
	}
	pid := p.PID()
	c := &child{
		pid:       pid,
		probation: u.opts.Probation,
		ctl:       ctl,
		lines:     wire.NewLines(ctl),
		exited:    p.Exited(),
		state: func() *os.ProcessState {
			<-p.Exited()
			return p.State()
		},
		signal:  p.Signal,
		settled: p.Settled(),
		stderr:  func() string { return "" }, // its stderr is ours: nothing to quote
		status:  p.Status,
		release: p.CloseNotify, // now, not when this process exits: nothing is left behind in /tmp
	}
	go func() {
		defer agent.Close()
		u.relay(p, agent)
	}()
	return c, nil
}

// relay speaks handoff's protocol on agent for a foreign child, from what
// the child sends with sd_notify: its READY=1 is "ready"; at "go" the relay
// writes the pidfile with the child's PID and says "live". It ends when
// the child has taken over, has exited, or Stop is called.
func (u *Upgrader) relay(p *starter.Process, agent *os.File) {
	ctx, cancel := u.untilStop()
	defer cancel()
	go func() {
		select {
		case <-p.Exited():
		case <-ctx.Done():
		}
		cancel()
	}()
	select {
	case <-p.Ready():
	case <-ctx.Done():
		return
	}
	if wire.Ready(agent) != nil || wire.WaitGo(ctx, agent) != nil {
		return
	}
	if err := u.writePIDFile(p.PID()); err != nil {
		wire.Fail(agent, strings.TrimPrefix(err.Error(), "upgrade: "))
		return
	}
	if wire.Live(agent) != nil {
		return
	}
	if u.sd.active() {
		if err := wire.WaitMain(ctx, agent); err != nil && ctx.Err() == nil {
			u.log.Debug("relay: no main from the parent", slog.Any("error", err))
		}
	}
}
