//go:build linux

package integration_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
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

const (
	wsClients  = 50 // WebSocket clients of wsload in TestWebSocketServer
	wsUpgrades = 20 // upgrades in TestWebSocketServer, v2, v1, v2, ...
	// The drain deadline the server is given, and how soon after its
	// upgrade signal each old generation must be gone: one that waited
	// for its WebSockets to be cut at the deadline could not make it.
	wsDrainTimeout = 20 * time.Second
	wsGoneWithin   = 15 * time.Second
)

// wsBins holds websocket v1 and v2 and wsload, built once per test binary
// from the examples/websocket module, which has a go.mod of its own so
// that the WebSocket library stays out of handoff's dependencies.
var wsBins struct {
	once   sync.Once
	v1, v2 string
	load   string
	err    error
}

func buildWebSocket(t *testing.T) (v1, v2, load string) {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("skipping: the websocket example is built by the go command, which is not on PATH")
	}
	wsBins.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		dir := filepath.Dir(bins.v1)
		const mod = "examples/websocket"
		wsBins.v1 = filepath.Join(dir, "websocket-v1")
		wsBins.v2 = filepath.Join(dir, "websocket-v2")
		wsBins.load = filepath.Join(dir, "wsload")
		builds := []struct{ pkg, version, out string }{
			{".", "v1", wsBins.v1},
			{".", "v2", wsBins.v2},
			{"./cmd/wsload", "dev", wsBins.load},
		}
		errs := make([]error, len(builds))
		var wg sync.WaitGroup
		for i, b := range builds {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = harness.BuildIn(ctx, mod, b.pkg, b.version, b.out)
			}()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				wsBins.err = fmt.Errorf("%w\n(the first run of this test downloads github.com/gobwas/ws and github.com/coder/websocket through the module proxy)", err)
				return
			}
		}
	})
	require.NoError(t, wsBins.err)
	return wsBins.v1, wsBins.v2, wsBins.load
}

// wsSummary is what wsload prints (its Summary type).
type wsSummary struct {
	Clients            int              `json:"clients"`
	Sent               int64            `json:"sent"`
	Unsent             int64            `json:"unsent"`
	Echoed             int64            `json:"echoed"`
	Lost               int64            `json:"lost"`
	UnansweredAbnormal int64            `json:"unanswered_abnormal"`
	UnansweredAtEnd    int64            `json:"unanswered_at_end"`
	Reordered          int64            `json:"reordered"`
	Mismatched         int64            `json:"mismatched"`
	Moves              int64            `json:"moves"`
	Closes             map[string]int64 `json:"closes"`
	Abnormal           int64            `json:"abnormal"`
	AbnormalByKind     map[string]int64 `json:"abnormal_by_kind"`
	Dials              int64            `json:"dials"`
	DialFailures       int64            `json:"dial_failures"`
	PIDs               map[string]int64 `json:"pids"`
	Versions           map[string]int64 `json:"versions"`
	Errors             []string         `json:"errors"`
	Seconds            float64          `json:"seconds"`
}

// startWebSocketServer installs first at dir/websocket, starts it with a
// drain deadline of wsDrainTimeout, and waits until it is ready.
// (startExample would set a deadline of its own.)
func startWebSocketServer(t *testing.T, first, addr string, extra ...string) *server {
	t.Helper()
	dir := t.TempDir()
	binPath := filepath.Join(dir, "websocket")
	require.NoError(t, harness.Install(first, binPath))
	pidPath := filepath.Join(dir, "app.pid")
	hs, err := harness.Start(binPath, pidPath, filepath.Join(dir, "server.log"),
		append([]string{"-addr", addr, "-pidfile", pidPath, "-drain-timeout", wsDrainTimeout.String()}, extra...)...)
	require.NoError(t, err)
	s := &server{Server: hs, t: t, dir: dir, bin: binPath, addr: addr}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		assert.NoError(t, hs.Stop(ctx), "stopping the server")
		assert.NotContains(t, hs.Log(), harness.RaceReport, "a race in the server (race-built in a -race run)")
		if t.Failed() {
			t.Logf("server log:\n%s", hs.Log())
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = hs.WaitPID(ctx, 0)
	require.NoError(t, err)
	return s
}

// wsLoad is a running wsload.
type wsLoad struct {
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
}

func startWSLoad(t *testing.T, bin string, args ...string) *wsLoad {
	t.Helper()
	// -duration only bounds a wsload whose test died; stop ends it.
	l := &wsLoad{cmd: exec.Command(bin, append([]string{"-duration", "3m"}, args...)...)}
	l.cmd.Stdout, l.cmd.Stderr = &l.stdout, &l.stderr
	require.NoError(t, l.cmd.Start())
	t.Cleanup(func() { l.cmd.Process.Kill() })
	return l
}

// stop sends wsload SIGTERM and returns its summary.
func (l *wsLoad) stop(t *testing.T) wsSummary {
	t.Helper()
	require.NoError(t, l.cmd.Process.Signal(syscall.SIGTERM))
	waited := make(chan error, 1)
	go func() { waited <- l.cmd.Wait() }()
	var err error
	select {
	case err = <-waited:
	case <-time.After(30 * time.Second):
		l.cmd.Process.Kill()
		<-waited
		t.Fatalf("wsload did not stop within 30s of SIGTERM; stderr:\n%s", l.stderr.String())
	}
	require.NoError(t, err, "wsload; stderr:\n%s", l.stderr.String())
	var s wsSummary
	require.NoError(t, json.Unmarshal(l.stdout.Bytes(), &s), "wsload's summary:\n%s", l.stdout.String())
	return s
}

// TestWebSocketServer upgrades the websocket example 20 times under 50
// WebSocket clients that send a message every 5ms each.
//
// "pass": every WebSocket is passed on to each new generation between two
// messages: no connection is closed or broken, no client dials again, no
// message is lost or answered out of order, and every connection's echoes
// move on to the new pid at each upgrade.
//
// "close" (-pass=false, as with a new generation that cannot take them):
// every connection the server ends, it ends with a close frame of status
// 1001 — none breaks and none closes otherwise — every echo comes back in
// order from the generation the connection reached, the clients reconnect
// to the new generation each time; messages in flight when a close comes
// are lost: counted and reported.
//
// Either way each old generation is gone long before its drain deadline.
func TestWebSocketServer(t *testing.T) {
	t.Run("pass", func(t *testing.T) { testWebSocketServer(t, true) })
	t.Run("close", func(t *testing.T) { testWebSocketServer(t, false) })
}

func testWebSocketServer(t *testing.T, pass bool) {
	v1, v2, load := buildWebSocket(t)
	addr, err := harness.FreePort()
	require.NoError(t, err)
	s := startWebSocketServer(t, v1, addr, "-pass="+strconv.FormatBool(pass))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pid, err := s.WaitPID(ctx, 0)
	require.NoError(t, err)
	pids := []int{pid}
	version := "v1"

	lg := startWSLoad(t, load, "-addr", addr, "-clients", strconv.Itoa(wsClients), "-interval", "5ms")
	time.Sleep(300 * time.Millisecond) // every client connected and talking
	var slowest time.Duration
	for i := 1; i <= wsUpgrades; i++ {
		bin := v2
		version = "v2"
		if i%2 == 0 {
			bin, version = v1, "v1"
		}
		old := pids[len(pids)-1]
		require.NoError(t, harness.Install(bin, s.bin))
		start := time.Now()
		require.NoError(t, syscall.Kill(old, syscall.SIGHUP))
		ctx, cancel := context.WithTimeout(context.Background(), wsGoneWithin)
		pid, err := s.WaitPID(ctx, old)
		require.NoError(t, err, "upgrade %d: no new generation", i)
		err = harness.WaitGone(ctx, old)
		cancel()
		require.NoError(t, err, "upgrade %d: generation %d still alive %v after SIGHUP (drain deadline %v): its WebSockets kept it draining", i, old, wsGoneWithin, wsDrainTimeout)
		slowest = max(slowest, time.Since(start))
		pids = append(pids, pid)
		time.Sleep(300 * time.Millisecond) // the clients reconnect and talk to the new one
	}
	sum := lg.stop(t)

	t.Logf("%d clients, %d upgrades in %.1fs: messages sent %d, echoed %d, lost in flight at a 1001 close %d (%.2f per close), unsent %d; moves to a new generation on the same connection %d; closes %v; dials %d (failed %d); abnormal %d %v; echoes by version %v; slowest signal-to-old-gone %v",
		sum.Clients, wsUpgrades, sum.Seconds, sum.Sent, sum.Echoed, sum.Lost, float64(sum.Lost)/float64(max(1, sum.Closes["1001"])), sum.Unsent,
		sum.Moves, sum.Closes, sum.Dials, sum.DialFailures, sum.Abnormal, sum.AbnormalByKind, sum.Versions, slowest)
	for _, e := range sum.Errors {
		t.Logf("wsload: %s", e)
	}
	assert.Zero(t, sum.Abnormal, "abnormal disconnects (a close other than 1001, a connection broken without a close frame, a failed dial)")
	assert.Zero(t, sum.Reordered, "echoes out of order")
	assert.Zero(t, sum.Mismatched, "echoes that answered no message sent")
	assert.Zero(t, sum.UnansweredAtEnd, "messages unanswered when the run ended, long after the last upgrade")
	assert.Equal(t, sum.Sent, sum.Echoed+sum.Lost+sum.UnansweredAbnormal+sum.UnansweredAtEnd+sum.Reordered, "wsload's accounting")
	if pass {
		assert.Empty(t, sum.Closes, "connections the server closed")
		assert.Zero(t, sum.Lost+sum.UnansweredAbnormal+sum.Unsent, "messages lost")
		assert.Equal(t, int64(wsClients), sum.Dials, "dials: one per client, at the start")
		assert.Equal(t, int64(wsClients*wsUpgrades), sum.Moves, "moves: each connection once per upgrade")
	} else {
		testWebSocketCloses(t, sum)
	}
	assert.Greater(t, sum.Echoed, int64(wsClients*wsUpgrades*10), "echoes")
	// Each generation served, and only generations the pidfile named.
	assert.Len(t, sum.PIDs, len(pids), "generations that echoed")
	for p := range sum.PIDs {
		n, err := strconv.Atoi(p)
		if assert.NoError(t, err) {
			assert.Contains(t, pids, n, "pid %s echoed but is no generation the pidfile named", p)
		}
	}

	// The last build answers, and it alone is left.
	last := pids[len(pids)-1]
	s.requireAnswer(version, last)
	for _, p := range pids[:len(pids)-1] {
		assert.False(t, harness.Alive(p), "generation %d is still alive", p)
	}
	s.requireOneGeneration(last)
	assert.NotContains(t, s.Log(), "drain deadline passed", "a generation cut its connections at the drain deadline")
}

// testWebSocketCloses checks a run whose WebSockets were closed at each
// upgrade.
func testWebSocketCloses(t *testing.T, sum wsSummary) {
	for code := range sum.Closes {
		assert.Equal(t, "1001", code, "every close the server sent is 1001 (going away)")
	}
	// Every client is on the live generation at each upgrade and is closed
	// once; a client that reconnected while the old generation was still
	// accepting reached it and was closed again at once, so a few more.
	closes := sum.Closes["1001"]
	assert.GreaterOrEqual(t, closes, int64(wsClients*wsUpgrades), "1001 closes: each client once per upgrade")
	assert.LessOrEqual(t, closes, int64(wsClients*wsUpgrades*11/10), "1001 closes: about one per client per upgrade")
	var ended int64 // connections the server ended, however
	for _, n := range sum.Closes {
		ended += n
	}
	ended += sum.AbnormalByKind["read error"]
	assert.Equal(t, int64(wsClients)+ended+sum.DialFailures, sum.Dials, "dials: one at the start, one after each connection the server ended, one after each failed dial")
}
