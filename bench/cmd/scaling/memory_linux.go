package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/handoff-go/handoff/internal/loadgen"
)

// helloServers are the servers whose cost is compared, by package.
var helloServers = []struct{ name, pkg string }{
	{"net/http", "github.com/handoff-go/handoff/bench/cmd/scaling/hello/plain"},
	{"handoff", "github.com/handoff-go/handoff/bench/cmd/scaling/hello/handoff"},
}

// measureServers builds each hello server (plain and stripped, for the
// sizes) and, runs times, starts it, reads its memory idle, serves
// requests requests, and reads it again. The memory figures are medians
// over the runs.
func measureServers(ctx context.Context, dir string, runs int, requests int64, progress io.Writer) ([]ServerCost, error) {
	var out []ServerCost
	for _, s := range helloServers {
		start := time.Now()
		c := ServerCost{Name: s.name, Runs: runs}
		bin := filepath.Join(dir, filepath.Base(s.pkg))
		var err error
		if c.Binary, err = build(ctx, s.pkg, bin); err != nil {
			return nil, err
		}
		if c.Stripped, err = build(ctx, s.pkg, bin+"-stripped", "-ldflags=-s -w"); err != nil {
			return nil, err
		}
		var idle, loaded []Memory
		for range runs {
			i, l, st, err := serverRun(ctx, bin, requests)
			if err != nil {
				return nil, fmt.Errorf("%s server: %w", s.name, err)
			}
			idle, loaded = append(idle, i), append(loaded, l)
			c.Requests = st.Requests
			c.Failed += st.Failed
		}
		c.Idle, c.Loaded = medianMemory(idle), medianMemory(loaded)
		out = append(out, c)
		fmt.Fprintf(progress, "scaling: %s hello server: %d runs in %v\n", s.name, runs, time.Since(start).Round(time.Millisecond))
	}
	return out, nil
}

// build compiles pkg to out with the go command that ran this program's
// build (found on PATH) and returns the binary's size.
func build(ctx context.Context, pkg, out string, flags ...string) (int64, error) {
	args := append([]string{"build", "-o", out}, flags...)
	cmd := exec.CommandContext(ctx, "go", append(args, pkg)...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("go build %s: %w (run from the bench module: cd bench)\n%s", pkg, err, b)
	}
	fi, err := os.Stat(out)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// serverRun starts bin, reads its memory once idle, drives requests
// requests at it (half the clients keep connections alive, half open one
// per request) and reads its memory again.
func serverRun(ctx context.Context, bin string, requests int64) (idle, loaded Memory, st loadgen.Stats, err error) {
	cmd := exec.CommandContext(ctx, bin)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return idle, loaded, st, err
	}
	if err := cmd.Start(); err != nil {
		return idle, loaded, st, err
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { io.Copy(io.Discard, stdout); cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}()
	addr, err := firstLine(stdout, 10*time.Second)
	if err != nil {
		return idle, loaded, st, err
	}
	time.Sleep(idleSettle)
	if idle, err = readMemory(cmd.Process.Pid); err != nil {
		return idle, loaded, st, err
	}
	if st, err = drive(addr, requests); err != nil {
		return idle, loaded, st, err
	}
	loaded, err = readMemory(cmd.Process.Pid)
	return idle, loaded, st, err
}

// firstLine reads the first line of r, within timeout.
func firstLine(r io.Reader, timeout time.Duration) (string, error) {
	type result struct {
		line string
		err  error
	}
	c := make(chan result, 1)
	go func() {
		line, err := bufio.NewReader(r).ReadString('\n')
		c <- result{strings.TrimSpace(line), err}
	}()
	select {
	case res := <-c:
		if res.err != nil {
			return "", fmt.Errorf("the server said nothing: %w", res.err)
		}
		return res.line, nil
	case <-time.After(timeout):
		return "", errors.New("the server did not say where it listens in time")
	}
}

// drive sends at least requests requests to addr from 32 clients.
func drive(addr string, requests int64) (loadgen.Stats, error) {
	var loads []*loadgen.Load
	for _, mode := range []loadgen.Mode{loadgen.KeepAlive, loadgen.NewConn} {
		l, err := loadgen.Start(loadgen.Config{Addr: addr, Clients: 16, Mode: mode})
		if err != nil {
			for _, l := range loads {
				l.Stop()
			}
			return loadgen.Stats{}, err
		}
		loads = append(loads, l)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var n int64
		for _, l := range loads {
			n += l.Snapshot().Requests
		}
		if n >= requests || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	var total loadgen.Stats
	for _, l := range loads {
		s := l.Stop()
		total.Requests += s.Requests
		total.Failed += s.Failed
	}
	if total.Requests < requests {
		return total, fmt.Errorf("only %d of %d requests in 2 minutes", total.Requests, requests)
	}
	return total, nil
}
