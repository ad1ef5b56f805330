package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/handoff-go/handoff/internal/harness"
	"github.com/handoff-go/handoff/internal/loadgen"
	"github.com/handoff-go/handoff/pidfile"
)

const (
	startTimeout   = 10 * time.Second // a server's first start, until its pidfile names it
	upgradeTimeout = 30 * time.Second // an upgrade, until the new one is ready and the old one gone
	stopTimeout    = 10 * time.Second // the final graceful stop
	pollEvery      = time.Millisecond // how often pidfiles and /proc are read during an upgrade
)

// driver builds the servers and runs the trials.
type driver struct {
	opts     options
	work     string               // binaries and pidfiles
	logs     string               // the servers' stderr, one file per trial
	builds   map[string][2]string // mechanism -> v1 and v2 binaries
	progress io.Writer
	cert     *serverCert // for the tls- configurations; nil until one runs
}

// build compiles v1 and v2 of every mechanism's server. It must run before
// the reaper starts: the reaper would steal `go build`'s exit status.
func (d *driver) build(ctx context.Context) error {
	d.builds = map[string][2]string{}
	for _, m := range d.opts.Mechanisms {
		var bins [2]string
		for i := range bins {
			bins[i] = filepath.Join(d.work, fmt.Sprintf("%s-v%d", m.Name, i+1))
			start := time.Now()
			if err := harness.Build(ctx, m.Pkg, fmt.Sprintf("v%d", i+1), bins[i]); err != nil {
				return err
			}
			fmt.Fprintf(d.progress, "built %s v%d (%v)\n", m.Name, i+1, time.Since(start).Round(time.Millisecond))
		}
		d.builds[m.Name] = bins
	}
	return nil
}

// server is the processes of one trial.
type server struct {
	bin, pidPath, addr, logPath string
	flags                       []string // more of its command line (-tls-cert ...)
	pgids                       []int    // every process group started (stopstart starts one per upgrade)
	pid                         int      // the live process
}

// start starts the binary in place, in its own process group (Setpgid,
// not Setsid: with autogroup scheduling a new session would get its own
// CPU share), and returns its PID. Its exit is collected by the reaper,
// never by os/exec.
func (s *server) start() (int, error) {
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 0, err
	}
	defer logf.Close()
	cmd := exec.Command(s.bin, append([]string{"-addr", s.addr, "-pidfile", s.pidPath}, s.flags...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	pid := cmd.Process.Pid
	s.pgids = append(s.pgids, pid)
	cmd.Process.Release() // the reaper waits for it; this frees the pidfd
	return pid, nil
}

// waitPIDFile waits until the pidfile names a live process for which ok
// returns true, and returns it.
func (s *server) waitPIDFile(ctx context.Context, ok func(pid int) bool) (int, error) {
	for {
		pid, err := pidfile.Read(s.pidPath)
		if err == nil && ok(pid) && harness.Alive(pid) {
			return pid, nil
		}
		if ctx.Err() != nil {
			return 0, fmt.Errorf("pidfile %s: no new live process (last read: %d, %v): %w", s.pidPath, pid, err, ctx.Err())
		}
		time.Sleep(pollEvery)
	}
}

// stop stops the live process gracefully, then kills whatever is left in
// the trial's process groups.
func (s *server) stop() error {
	defer func() {
		for _, g := range s.pgids {
			syscall.Kill(-g, syscall.SIGKILL)
		}
	}()
	if s.pid == 0 {
		return nil
	}
	if err := syscall.Kill(s.pid, syscall.SIGTERM); err != nil {
		return fmt.Errorf("stop: kill -TERM %d: %w", s.pid, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	return harness.WaitGone(ctx, s.pid)
}

// runTrial starts v1 of m, loads it with c, upgrades it opts.Upgrades
// times (to v2, v1, v2, ...) and measures what the clients saw.
func (d *driver) runTrial(ctx context.Context, t *trial) (err error) {
	m, c := t.Mech, t.Config
	dir := filepath.Join(d.work, m.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	addr, err := harness.FreePort()
	if err != nil {
		return err
	}
	s := &server{
		bin:     filepath.Join(dir, "server"),
		pidPath: filepath.Join(dir, "app.pid"),
		addr:    addr,
		logPath: filepath.Join(d.logs, t.id()+".log"),
	}
	load := c.Load()
	load.Addr, load.OnResult = addr, nil
	if c.TLS {
		if d.cert == nil {
			if d.cert, err = makeCert(d.work); err != nil {
				return fmt.Errorf("make a TLS certificate: %w", err)
			}
		}
		s.flags = []string{"-tls-cert", d.cert.CertFile, "-tls-key", d.cert.KeyFile}
		load.TLS = d.cert.Client
	}
	t.Log = s.logPath
	os.Remove(s.pidPath)
	os.Remove(s.logPath)
	bins := d.builds[m.Name]
	if err := harness.Install(bins[0], s.bin); err != nil {
		return err
	}
	defer func() {
		if serr := s.stop(); serr != nil && err == nil {
			err = serr
		}
	}()
	first, err := s.start()
	if err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(ctx, startTimeout)
	s.pid, err = s.waitPIDFile(sctx, func(pid int) bool { return pid == first })
	cancel()
	if err != nil {
		return fmt.Errorf("%s did not start: %w\n%s", m.Name, err, tail(s.logPath))
	}

	base := time.Now()
	stalls := startStallMonitor(base)
	rec := newRecorder(base, c.Clients)
	load.OnResult = rec.on
	l, err := loadgen.Start(load)
	if err != nil {
		stalls.Stop()
		return err
	}
	stopLoad := func() {
		t.End = time.Since(base)
		st := l.Stop()
		t.Stalls = stalls.Stop()
		t.Errors, t.Versions, t.Retried = st.Errors, versions(st.Bodies), st.Retried
		events := rec.events()
		t.Metrics = analyze(events, t.Marks, t.Stalls, d.opts.Warmup, t.End)
		t.Timeline = newTimeline(events, t.End)
	}
	if err := sleepUntil(ctx, base.Add(d.opts.Warmup+d.opts.Baseline)); err != nil {
		stopLoad()
		return err
	}
	for i := range d.opts.Upgrades {
		if err := harness.Install(bins[(i+1)%2], s.bin); err != nil {
			stopLoad()
			return err
		}
		mk, err := d.upgrade(ctx, s, m, base)
		if mk.Signal > 0 {
			t.Marks = append(t.Marks, mk)
		}
		if err != nil {
			stopLoad()
			return fmt.Errorf("upgrade %d: %w\n%s", i+1, err, tail(s.logPath))
		}
		if err := sleepUntil(ctx, base.Add(mk.Signal+d.opts.Interval)); err != nil {
			stopLoad()
			return err
		}
	}
	stopLoad()
	return nil
}

// upgrade replaces the live process of s with the build now installed
// and times it. Times in the mark are relative to base.
func (d *driver) upgrade(ctx context.Context, s *server, m mechanism, base time.Time) (upgradeMark, error) {
	ctx, cancel := context.WithTimeout(ctx, upgradeTimeout)
	defer cancel()
	mk := upgradeMark{OldPID: s.pid}
	old := s.pid
	if !m.HandOver {
		// Stop, wait for the exit, start the new build.
		mk.Signal = time.Since(base)
		if err := syscall.Kill(old, syscall.SIGTERM); err != nil {
			return mk, fmt.Errorf("kill -TERM %d: %w", old, err)
		}
		for harness.Alive(old) {
			if ctx.Err() != nil {
				return mk, fmt.Errorf("process %d still alive %v after kill -TERM", old, upgradeTimeout)
			}
			time.Sleep(pollEvery)
		}
		mk.Gone = time.Since(base)
		pid, err := s.start()
		if err != nil {
			return mk, err
		}
		s.pid = pid
		if _, err := s.waitPIDFile(ctx, func(p int) bool { return p == pid }); err != nil {
			return mk, err
		}
		mk.Ready, mk.NewPID = time.Since(base), pid
		return mk, nil
	}
	cpuBefore, cpuOK := processCPU(old)
	mk.Signal = time.Since(base)
	if err := syscall.Kill(old, syscall.SIGHUP); err != nil {
		return mk, fmt.Errorf("kill -HUP %d: %w", old, err)
	}
	// Watch both at once: which comes first depends on the mechanism.
	for mk.Ready == 0 || mk.Gone == 0 {
		if mk.Ready == 0 {
			if pid, err := pidfile.Read(s.pidPath); err == nil && pid != old && harness.Alive(pid) {
				mk.Ready, mk.NewPID = time.Since(base), pid
				s.pid = pid
				mk.CPUNew, _ = processCPU(pid)
			}
		}
		if mk.Gone == 0 && !harness.Alive(old) {
			mk.Gone = time.Since(base)
		}
		if ctx.Err() != nil {
			switch {
			case mk.Ready == 0:
				return mk, fmt.Errorf("no new process in the pidfile %v after kill -HUP %d", upgradeTimeout, old)
			default:
				return mk, fmt.Errorf("old process %d still alive %v after kill -HUP", old, upgradeTimeout)
			}
		}
		time.Sleep(pollEvery)
	}
	if total, ok := cpuAtExit(old, 500*time.Millisecond); ok && cpuOK {
		mk.CPUOld = total - cpuBefore
	}
	return mk, nil
}

// sleepUntil sleeps until t, or until ctx is done.
func sleepUntil(ctx context.Context, t time.Time) error {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// tail returns the end of a log file, for error messages.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	const max = 2000
	if len(b) > max {
		b = b[len(b)-max:]
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "(server log " + path + " is empty)"
	}
	return "server log " + path + ":\n" + s
}
