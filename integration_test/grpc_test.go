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
	Streams *grpcStreamSummary `json:"streams"`
	Errors  []string           `json:"errors"`
	Seconds float64            `json:"seconds"`
}

// grpcStreamSummary is what grpcload prints for -method ticks and chat
// (its StreamSummary type).
type grpcStreamSummary struct {
	Opened       int64            `json:"opened"`
	Reopened     map[string]int64 `json:"reopened"`  // opened after a GoingAway, by PID
	Bounced      map[string]int64 `json:"bounced"`   // of those, sent away again before a message
	SentAway     map[string]int64 `json:"sent_away"` // answered on, then sent away (GoingAway), by PID
	Ends         map[string]int64 `json:"ends"`      // OK, GoingAway, Stopped or a status code
	Failed       int64            `json:"failed"`
	Messages     int64            `json:"messages"`
	PIDs         map[string]int64 `json:"pids"` // messages by PID
	Mismatched   int64            `json:"mismatched"`
	LostInFlight int64            `json:"lost_in_flight"`
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
	return l.result(t)
}

// result waits for grpcload to finish by itself (with -n) and returns its
// summary. Closing its standard input first would end it before it began.
func (l *grpcLoad) result(t *testing.T) grpcSummary {
	t.Helper()
	waited := make(chan error, 1)
	go func() { waited <- l.cmd.Wait() }()
	var err error
	select {
	case err = <-waited:
	case <-time.After(30 * time.Second):
		l.cmd.Process.Kill()
		<-waited
		t.Fatalf("grpcload did not stop within 30s; stderr:\n%s", l.stderr.String())
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
	longSum := long.result(t)

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
	probe := startGRPCLoad(t, load, "-addr", addr, "-clients", "1", "-n", "1", "-method", "health").result(t)
	assert.Equal(t, int64(1), probe.OK, "health check after the upgrades: %v", probe.Errors)
	assert.Equal(t, fmt.Sprintf("v%d", grpcUpgrades+1), probe.Last.Version)
	assert.Equal(t, last, probe.Last.PID)
	for _, p := range pids[:len(pids)-1] {
		assert.False(t, harness.Alive(p), "generation %d is still alive", p)
	}
	s.requireOneGeneration(last)
}

// startGRPCServer starts grpcserver from bin as startExample does, but
// with -drain-timeout drain (startExample's own would win over one passed
// to it).
func startGRPCServer(t *testing.T, bin, addr string, drain time.Duration) *server {
	t.Helper()
	dir := t.TempDir()
	binPath := filepath.Join(dir, "grpcserver")
	require.NoError(t, harness.Install(bin, binPath))
	pidPath := filepath.Join(dir, "app.pid")
	hs, err := harness.Start(binPath, pidPath, filepath.Join(dir, "server.log"),
		"-addr", addr, "-pidfile", pidPath, "-drain-timeout", drain.String())
	require.NoError(t, err)
	s := &server{Server: hs, t: t, dir: dir, bin: binPath, addr: addr}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), drain+10*time.Second)
		defer cancel()
		assert.NoError(t, hs.Stop(ctx), "stopping the server")
		_, err := hs.WaitFirst(ctx)
		assert.NoError(t, err)
		if t.Failed() {
			t.Logf("server log:\n%s", hs.Log())
		}
	})
	return s
}

// grpcStreamUpgrades is how many times TestGRPCStreams upgrades.
const grpcStreamUpgrades = 20

// TestGRPCStreams upgrades grpcserver 20 times (v2, v1, v2, ...) under
// unary load, endless server streams (Ticks) and bidirectional streams
// (Chat, 40 messages each, then closed): no unary RPC fails; every stream
// ends OK, or with the status by which a draining generation sends it away
// (never cut, never broken); no message comes out of order or unanswered
// by a stream that ended OK; every stream the drain ended was opened again
// on the new generation; and each old generation is gone long before its
// drain deadline: its streams ended at the drain and did not hold it.
func TestGRPCStreams(t *testing.T) {
	servers, load := buildGRPC(t)
	addr, err := harness.FreePort()
	require.NoError(t, err)
	const drain = 20 * time.Second
	s := startGRPCServer(t, servers[0], addr, drain)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pid, err := s.WaitPID(ctx, 0)
	require.NoError(t, err)
	pids := []int{pid}

	const clients, perClient = 2, 4 // streams of each kind: clients × perClient
	unary := startGRPCLoad(t, load, "-addr", addr, "-clients", "8", "-fresh", "4")
	ticks := startGRPCLoad(t, load, "-addr", addr, "-method", "ticks", "-interval", "10ms",
		"-clients", strconv.Itoa(clients), "-streams", strconv.Itoa(perClient))
	chat := startGRPCLoad(t, load, "-addr", addr, "-method", "chat", "-interval", "5ms", "-messages", "40",
		"-clients", strconv.Itoa(clients), "-streams", strconv.Itoa(perClient))
	time.Sleep(300 * time.Millisecond)
	for i := 1; i <= grpcStreamUpgrades; i++ {
		bin := servers[i%2] // v2, v1, v2, ...
		require.NoError(t, harness.Install(bin, s.bin))
		// Well before the drain deadline: a stream that held the drain
		// would keep the old generation until then.
		ctx, cancel := context.WithTimeout(context.Background(), drain/2)
		newPID, took, err := s.Upgrade(ctx, syscall.SIGHUP)
		cancel()
		require.NoError(t, err, "upgrade %d: the old generation %d was not gone within %v of the signal (-drain-timeout %v)", i, pids[len(pids)-1], drain/2, drain)
		t.Logf("upgrade %d: v%d PID %d, old generation gone after %v", i, i%2+1, newPID, took.Round(time.Millisecond))
		pids = append(pids, newPID)
		time.Sleep(200 * time.Millisecond)
	}
	u, tk, ch := unary.stop(t), ticks.stop(t), chat.stop(t)

	t.Logf("unary: RPCs %d, OK %d, failed %d %v", u.RPCs, u.OK, u.Failed, u.ByCode)
	assert.Zero(t, u.Failed, "failed unary RPCs")
	assert.Greater(t, u.OK, int64(1000), "unary RPCs answered")
	for _, e := range append(append(u.Errors, tk.Errors...), ch.Errors...) {
		t.Logf("failure: %s", e)
	}

	streams := int64(clients * perClient)
	for _, c := range []struct {
		name string
		sum  grpcSummary
	}{{"ticks", tk}, {"chat", ch}} {
		st := c.sum.Streams
		if !assert.NotNil(t, st, "%s: grpcload printed no stream summary", c.name) {
			continue
		}
		t.Logf("%s: streams opened %d, messages %d, ends %v, lost in flight %d, mismatched %d",
			c.name, st.Opened, st.Messages, st.Ends, st.LostInFlight, st.Mismatched)
		assert.Zero(t, st.Failed, "%s: streams that ended neither OK nor sent away by the drain: %v", c.name, st.Ends)
		for end := range st.Ends {
			assert.Contains(t, []string{"OK", "GoingAway", "Stopped"}, end, "%s: streams ended so: %v", c.name, st.Ends)
		}
		assert.Zero(t, st.Mismatched, "%s: messages out of order or not as sent", c.name)
		assert.Positive(t, st.Ends["GoingAway"], "%s: streams sent away by a drain", c.name)
		// The reopened streams that reached each new generation, and those
		// that reached the draining one again and were sent away at once.
		perUpgrade := make([]string, 0, grpcStreamUpgrades)
		var reopened int64
		for i, p := range pids[1:] {
			reached := st.Reopened[strconv.Itoa(p)] - st.Bounced[strconv.Itoa(p)]
			bounced := st.Bounced[strconv.Itoa(pids[i])]
			sentAway := st.SentAway[strconv.Itoa(pids[i])]
			perUpgrade = append(perUpgrade, fmt.Sprintf("%d:%d/%d+%d", i+1, reached, sentAway, bounced))
			if c.name == "ticks" {
				// Endless: every one of them was on the old generation.
				assert.GreaterOrEqual(t, reached, streams, "ticks: streams reopened on generation %d (upgrade %d)", p, i+1)
			}
			// A chat stream may end OK just before the drain (its 40
			// messages answered) and open its successor without having
			// been sent away, so the number sent away varies; each sent
			// away reaches the new generation.
			assert.GreaterOrEqual(t, reached, sentAway, "%s: streams generation %d sent away, reopened on generation %d (upgrade %d)", c.name, pids[i], p, i+1)
			reopened += reached
		}
		assert.Positive(t, reopened, "%s: streams reopened on a new generation", c.name)
		t.Logf("%s: reopened per upgrade (upgrade:reached the new generation/sent away by the old one+sent away again by it): %v", c.name, perUpgrade)
		for _, p := range pids {
			assert.Positive(t, st.PIDs[strconv.Itoa(p)], "%s: no message from generation %d", c.name, p)
		}
		for p := range st.PIDs {
			n, err := strconv.Atoi(p)
			if assert.NoError(t, err) {
				assert.Contains(t, pids, n, "%s: PID %s sent messages but is no generation the pidfile named", c.name, p)
			}
		}
	}
	if tk.Streams != nil {
		// Endless streams end only at a drain, or when grpcload stops.
		assert.GreaterOrEqual(t, tk.Streams.Ends["GoingAway"], grpcStreamUpgrades*streams, "ticks: streams sent away")
		assert.Equal(t, streams, tk.Streams.Ends["Stopped"], "ticks: streams stopped by grpcload at the end")
	}
	if ch.Streams != nil {
		assert.Positive(t, ch.Streams.Ends["OK"], "chat: streams closed by the client and ended OK")
	}

	last := pids[len(pids)-1]
	for _, p := range pids[:len(pids)-1] {
		assert.False(t, harness.Alive(p), "generation %d is still alive", p)
	}
	s.requireOneGeneration(last)
}
