//go:build linux

package integration_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/handoff-go/handoff/internal/harness"
)

// grpcUpgrades is how many times TestGRPCServer upgrades, each time to a
// build of its own.
const grpcUpgrades = 5

// grpcBins holds grpcserver v1..v(grpcUpgrades+1) and grpcload, built once
// per test binary from the examples/grpcserver module, which has a go.mod
// of its own so that gRPC stays out of handoff's dependencies. This test
// imports nothing of gRPC: it drives the two programs from outside.
var grpcBins struct {
	once    sync.Once
	servers []string // servers[i] answers version "v<i+1>"
	load    string
	err     error
}

func buildGRPC(t *testing.T) (servers []string, load string) {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("skipping: grpcserver is built by the go command, which is not on PATH")
	}
	grpcBins.once.Do(func() {
		// The first build downloads and compiles gRPC (about 30 s on two
		// cores with an empty build cache); the others only link.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		dir := filepath.Dir(bins.v1)
		const mod = "examples/grpcserver"
		for i := range grpcUpgrades + 1 {
			grpcBins.servers = append(grpcBins.servers, filepath.Join(dir, fmt.Sprintf("grpcserver-v%d", i+1)))
		}
		grpcBins.load = filepath.Join(dir, "grpcload")
		if grpcBins.err = harness.BuildIn(ctx, mod, ".", "v1", grpcBins.servers[0]); grpcBins.err != nil {
			return
		}
		errs := make([]error, len(grpcBins.servers))
		var wg sync.WaitGroup
		for i, out := range grpcBins.servers[1:] {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = harness.BuildIn(ctx, mod, ".", fmt.Sprintf("v%d", i+2), out)
			}()
		}
		errs[len(errs)-1] = harness.BuildIn(ctx, mod, "./cmd/grpcload", "dev", grpcBins.load)
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				grpcBins.err = fmt.Errorf("%w\n(the first run of this test downloads google.golang.org/grpc through the module proxy)", err)
				return
			}
		}
	})
	require.NoError(t, grpcBins.err)
	return grpcBins.servers, grpcBins.load
}

// grpcSummary is what grpcload prints (its Summary type).
type grpcSummary struct {
	RPCs     int64            `json:"rpcs"`
	OK       int64            `json:"ok"`
	Failed   int64            `json:"failed"`
	ByCode   map[string]int64 `json:"failed_by_code"`
	Versions map[string]int64 `json:"versions"`
	PIDs     map[string]int64 `json:"pids"`
	Last     struct {
		Version string `json:"version"`
		PID     int    `json:"pid"`
	} `json:"last"`
	Errors  []string `json:"errors"`
	Seconds float64  `json:"seconds"`
}

// grpcLoad is a running grpcload.
type grpcLoad struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout bytes.Buffer
	stderr bytes.Buffer
}

// startGRPCLoad starts grpcload with args; it runs until stop closes its
// standard input (or until it is done with its -n RPCs).
func startGRPCLoad(t *testing.T, bin string, args ...string) *grpcLoad {
	t.Helper()
	l := &grpcLoad{cmd: exec.Command(bin, append([]string{"-stdin"}, args...)...)}
	l.cmd.Stdout, l.cmd.Stderr = &l.stdout, &l.stderr
	var err error
	l.stdin, err = l.cmd.StdinPipe()
	require.NoError(t, err)
	require.NoError(t, l.cmd.Start())
	t.Cleanup(func() { l.cmd.Process.Kill() })
	return l
}

// stop ends the load and returns its summary.
func (l *grpcLoad) stop(t *testing.T) grpcSummary {
	t.Helper()
	l.stdin.Close()
	waited := make(chan error, 1)
	go func() { waited <- l.cmd.Wait() }()
	var err error
	select {
	case err = <-waited:
	case <-time.After(30 * time.Second):
		l.cmd.Process.Kill()
		<-waited
		t.Fatalf("grpcload did not stop within 30s of its stdin closing; stderr:\n%s", l.stderr.String())
	}
	require.NoError(t, err, "grpcload; stderr:\n%s", l.stderr.String())
	var s grpcSummary
	require.NoError(t, json.Unmarshal(l.stdout.Bytes(), &s), "grpcload's summary:\n%s", l.stdout.String())
	return s
}

// TestGRPCServer upgrades grpcserver 5 times, each time to a new build
// (v2, v3, ...), under load from clients holding one connection each and
// clients dialing per RPC, with a long RPC in flight across the first
// hand-over: no RPC fails, the last build answers, and every earlier
// generation is gone.
func TestGRPCServer(t *testing.T) {
	servers, load := buildGRPC(t)
	addr, err := harness.FreePort()
	require.NoError(t, err)
	s := startExample(t, "grpcserver", servers[0], addr, "-addr", addr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pid, err := s.WaitPID(ctx, 0)
	require.NoError(t, err)
	pids := []int{pid}

	lg := startGRPCLoad(t, load, "-addr", addr, "-clients", "16", "-fresh", "8")
	// The long RPC: it must be in the first generation's hands when the
	// upgrade starts (grpcload dials within milliseconds), and that
	// generation must answer it before it exits.
	const sleep = 2 * time.Second
	long := startGRPCLoad(t, load, "-addr", addr, "-clients", "1", "-n", "1", "-method", "sleep", "-sleep", sleep.String())
	time.Sleep(500 * time.Millisecond)
	for i := 1; i <= grpcUpgrades; i++ {
		pid, took := s.upgrade(servers[i], syscall.SIGHUP)
		t.Logf("upgrade %d: v%d PID %d, old generation gone after %v", i, i+1, pid, took)
		pids = append(pids, pid)
		time.Sleep(200 * time.Millisecond)
	}
	sum := lg.stop(t)
	longSum := long.stop(t)

	t.Logf("RPCs: %d, OK: %d, failed: %d %v, by version: %v, by PID: %v",
		sum.RPCs, sum.OK, sum.Failed, sum.ByCode, sum.Versions, sum.PIDs)
	for _, e := range sum.Errors {
		t.Logf("failure: %s", e)
	}
	assert.Zero(t, sum.Failed, "failed RPCs")
	assert.Greater(t, sum.OK, int64(1000))
	assert.Greater(t, len(sum.Versions), 1, "answers came from more than one version")
	for p := range sum.PIDs {
		n, err := strconv.Atoi(p)
		if assert.NoError(t, err) {
			assert.Contains(t, pids, n, "PID %s answered but is no generation the pidfile named", p)
		}
	}
	assert.Equal(t, int64(1), longSum.OK, "the long RPC failed: %v", longSum.Errors)
	assert.Equal(t, pids[0], longSum.Last.PID, "the long RPC (%v) was answered by the first generation, which drained it", sleep)

	// The last build answers, and it alone is left.
	last := pids[len(pids)-1]
	probe := startGRPCLoad(t, load, "-addr", addr, "-clients", "1", "-n", "1", "-method", "health").stop(t)
	assert.Zero(t, probe.Failed, "health check after the upgrades: %v", probe.Errors)
	assert.Equal(t, fmt.Sprintf("v%d", grpcUpgrades+1), probe.Last.Version)
	assert.Equal(t, last, probe.Last.PID)
	for _, p := range pids[:len(pids)-1] {
		assert.False(t, harness.Alive(p), "generation %d is still alive", p)
	}
	s.requireOneGeneration(last)
}
