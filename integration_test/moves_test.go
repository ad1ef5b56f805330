//go:build linux

package integration_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/handoff-go/handoff/internal/harness"
)

// kaConn is one keep-alive connection of a test client, speaking raw
// HTTP/1.1 so that nothing retries behind the test's back.
type kaConn struct {
	c  net.Conn
	br *bufio.Reader
}

func dialKA(addr string) (*kaConn, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	return &kaConn{c: c, br: bufio.NewReader(c)}, nil
}

// do sends GET path and reads the answer: its body, and whether the
// server said it closes the connection after it.
func (k *kaConn) do(path string) (body string, closing bool, err error) {
	k.c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(k.c, "GET %s HTTP/1.1\r\nHost: test\r\n\r\n", path); err != nil {
		return "", false, fmt.Errorf("write: %w", err)
	}
	return k.read()
}

// read reads one answer.
func (k *kaConn) read() (body string, closing bool, err error) {
	resp, err := http.ReadResponse(k.br, nil)
	if err != nil {
		return "", false, fmt.Errorf("read: %w", err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return "", false, fmt.Errorf("read body: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return string(b), resp.Close, fmt.Errorf("status %d", resp.StatusCode)
	}
	return string(b), resp.Close, nil
}

// open reports whether the connection still looks open, as curl, urllib3
// and Go's Transport check a pooled connection before reusing it: a read
// that would block means the server has not closed it.
func (k *kaConn) open() bool {
	k.c.SetReadDeadline(time.Now())
	_, err := k.br.Peek(1)
	k.c.SetReadDeadline(time.Time{})
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (k *kaConn) close() { k.c.Close() }

// poolStats is what a pool of keep-alive clients saw.
type poolStats struct {
	mu       sync.Mutex
	requests int
	failed   map[string]int // by what went wrong
	dials    int            // connections opened, the first ones included
	pids     map[string]int // answers by the generation that gave them
}

func (p *poolStats) add(f func(p *poolStats)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failed == nil {
		p.failed, p.pids = map[string]int{}, map[string]int{}
	}
	f(p)
}

func (p *poolStats) failures() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, c := range p.failed {
		n += c
	}
	return n
}

func (p *poolStats) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, c := range p.failed {
		n += c
	}
	return fmt.Sprintf("requests %d, failed %d %v, connections %d, answered by %d generations", p.requests, n, p.failed, p.dials, len(p.pids))
}

var pidOfBody = regexp.MustCompile(`pid=(\d+)`)

// runPool runs n clients, each on a connection of its own that it reuses
// after pause(), until stop closes. With check, a client checks its
// connection before reusing it and dials again if the server closed it;
// without, it sends on it regardless, as a pool that does not check does.
// A request that fails, or an answer with "Connection: close", makes the
// client dial again.
func runPool(addr string, n int, check bool, pause func() time.Duration, stop <-chan struct{}) (*poolStats, *sync.WaitGroup) {
	st := &poolStats{}
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var k *kaConn
			defer func() {
				if k != nil {
					k.close()
				}
			}()
			for {
				if k == nil {
					var err error
					if k, err = dialKA(addr); err != nil {
						st.add(func(p *poolStats) { p.requests++; p.failed["dial: "+err.Error()]++ })
						time.Sleep(10 * time.Millisecond)
						continue
					}
					st.add(func(p *poolStats) { p.dials++ })
				}
				select {
				case <-stop:
					return
				case <-time.After(pause()):
				}
				if check && !k.open() {
					k.close()
					k = nil
					continue
				}
				body, closing, err := k.do("/")
				st.add(func(p *poolStats) {
					p.requests++
					if err != nil {
						p.failed[errKind(err)]++
					} else if m := pidOfBody.FindStringSubmatch(body); m != nil {
						p.pids[m[1]]++
					}
				})
				if err != nil || closing {
					k.close()
					k = nil
				}
			}
		}()
	}
	return st, &wg
}

// errKind names a failure without addresses.
func errKind(err error) string {
	switch s := err.Error(); {
	case strings.Contains(s, "EOF"):
		return s[:strings.Index(s, ":")] + ": EOF"
	case strings.Contains(s, "reset"):
		return s[:strings.Index(s, ":")] + ": reset"
	case strings.Contains(s, "timeout"):
		return s[:strings.Index(s, ":")] + ": timeout"
	default:
		return s
	}
}

// TestIdlePoolSurvives: the pool of a load balancer or a client library —
// 300 keep-alive connections, each used after a pause of 0.5 to 2 s —
// through 10 upgrades a second apart. Idle connections move to the new
// generation, so a client that reuses a pooled connection without checking
// it fails nothing, and no client has to open a connection again.
func TestIdlePoolSurvives(t *testing.T) {
	s := startServer(t, bins.v1, "", "-drain-timeout", "10s")
	pause := func() time.Duration { return 500*time.Millisecond + rand.N(1500*time.Millisecond) }
	stop := make(chan struct{})
	const n = 300
	unchecked, wg1 := runPool(s.addr, n, false, pause, stop)
	checked, wg2 := runPool(s.addr, n, true, pause, stop)
	time.Sleep(2 * time.Second) // every connection is open and has been used
	const upgrades = 10
	for i := 1; i <= upgrades; i++ {
		bin := bins.v2
		if i%2 == 0 {
			bin = bins.v1
		}
		s.upgrade(bin, syscall.SIGHUP)
		time.Sleep(time.Second)
	}
	close(stop)
	wg1.Wait()
	wg2.Wait()
	t.Logf("%d upgrades, a second apart; pool of %d that does not check before reuse: %v", upgrades, n, unchecked)
	t.Logf("pool of %d that checks before reuse: %v", n, checked)
	t.Logf("old generations: %s", movedSummary(s.Log()))
	for _, p := range []*poolStats{unchecked, checked} {
		assert.Zero(t, p.failures(), "failed requests: %v", p)
		assert.Equal(t, n, p.dials, "connections opened: every client kept its first")
		assert.Greater(t, len(p.pids), upgrades/2, "answers came from the new generations")
	}
}

// TestKeepAliveBusySurvives: clients that send back to back, with random
// pauses of up to 2 ms so that requests race the move, through 20 upgrades:
// no request fails and no client has to open a connection again.
func TestKeepAliveBusySurvives(t *testing.T) {
	s := startServer(t, bins.v1, "", "-drain-timeout", "10s")
	stop := make(chan struct{})
	const n = 64
	st, wg := runPool(s.addr, n, false, func() time.Duration { return rand.N(2 * time.Millisecond) }, stop)
	time.Sleep(200 * time.Millisecond)
	for i := 1; i <= 20; i++ {
		bin := bins.v2
		if i%2 == 0 {
			bin = bins.v1
		}
		time.Sleep(50 * time.Millisecond)
		s.upgrade(bin, syscall.SIGHUP)
	}
	time.Sleep(100 * time.Millisecond)
	close(stop)
	wg.Wait()
	t.Logf("%d busy keep-alive clients, 20 upgrades: %v", n, st)
	t.Logf("old generations: %s", movedSummary(s.Log()))
	assert.Zero(t, st.failures(), "failed requests: %v", st)
	assert.Equal(t, n, st.dials, "connections opened")
}

// TestPipelinedAcrossMoves: clients that pipeline four requests at a time
// through 20 upgrades get every answer, once, in order. A connection with
// a request already in the old generation's buffer does not move until
// it has been answered; one that keeps it busy past IdleGrace is closed
// after an answer, as before.
func TestPipelinedAcrossMoves(t *testing.T) {
	s := startServer(t, bins.v1, "", "-drain-timeout", "10s")
	var (
		stop              atomic.Bool
		wg                sync.WaitGroup
		batches, failures atomic.Int64
		dials             atomic.Int64
		mu                sync.Mutex
		failed            []string
	)
	fail := func(what string) {
		failures.Add(1)
		mu.Lock()
		if len(failed) < 10 {
			failed = append(failed, what)
		}
		mu.Unlock()
	}
	const clients, depth = 8, 4
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var k *kaConn
			for seq := 0; !stop.Load(); {
				if k == nil {
					var err error
					if k, err = dialKA(s.addr); err != nil {
						fail(err.Error())
						return
					}
					dials.Add(1)
				}
				var req strings.Builder
				for i := range depth {
					fmt.Fprintf(&req, "GET /echo?s=%d-%d HTTP/1.1\r\nHost: test\r\n\r\n", c, seq+i)
				}
				k.c.SetDeadline(time.Now().Add(10 * time.Second))
				if _, err := io.WriteString(k.c, req.String()); err != nil {
					fail("write: " + err.Error())
					k.close()
					k = nil
					continue
				}
				closing := false
				for i := range depth {
					body, cl, err := k.read()
					if err != nil {
						fail(fmt.Sprintf("answer %d of %d: %v", i+1, depth, err))
						closing = true
						break
					}
					if want := fmt.Sprintf("%d-%d ", c, seq+i); !strings.HasPrefix(body, want) {
						fail(fmt.Sprintf("answer %q where %q was due", body, want))
						break
					}
					if cl {
						// The server closes after this answer: the rest of
						// the batch is not answered, and is sent again.
						closing = true
						seq += i + 1
						break
					}
				}
				if !closing {
					seq += depth
					batches.Add(1)
					continue
				}
				k.close()
				k = nil
			}
			if k != nil {
				k.close()
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	for i := 1; i <= 20; i++ {
		bin := bins.v2
		if i%2 == 0 {
			bin = bins.v1
		}
		time.Sleep(50 * time.Millisecond)
		s.upgrade(bin, syscall.SIGHUP)
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d clients pipelining %d requests, 20 upgrades: %d batches answered in order, %d failures %v, %d connections",
		clients, depth, batches.Load(), failures.Load(), failed, dials.Load())
	t.Logf("old generations: %s", movedSummary(s.Log()))
	assert.Zero(t, failures.Load(), "%v", failed)
	assert.Greater(t, batches.Load(), int64(100))
}

// TestTenThousandIdleConnections: 10,000 idle keep-alive connections move
// in one upgrade, and each is answered on the same connection by the new
// generation.
func TestTenThousandIdleConnections(t *testing.T) {
	s := startServer(t, bins.v1, "", "-drain-timeout", "30s")
	old, err := s.WaitPID(t.Context(), 0)
	require.NoError(t, err)
	const n = 10000
	conns := make([]*kaConn, n)
	t.Cleanup(func() {
		for _, k := range conns {
			if k != nil {
				k.close()
			}
		}
	})
	each := func(f func(i int, k *kaConn) error) map[string]int {
		var mu sync.Mutex
		errs := map[string]int{}
		sem := make(chan struct{}, 256)
		var wg sync.WaitGroup
		for i := range conns {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				if err := f(i, conns[i]); err != nil {
					mu.Lock()
					errs[errKind(err)]++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		return errs
	}
	errs := each(func(i int, _ *kaConn) error {
		k, err := dialKA(s.addr)
		if err != nil {
			return err
		}
		conns[i] = k
		body, _, err := k.do("/")
		if err == nil && body != fmt.Sprintf("version=v1 pid=%d", old) {
			err = fmt.Errorf("answer %q", body)
		}
		return err
	})
	require.Empty(t, errs, "opening %d connections", n)
	newPID, took := s.upgrade(bins.v2, syscall.SIGHUP)
	want := fmt.Sprintf("version=v2 pid=%d", newPID)
	errs = each(func(i int, k *kaConn) error {
		body, closing, err := k.do("/")
		switch {
		case err != nil:
			return err
		case body != want:
			return fmt.Errorf("answer %q", body)
		case closing:
			return errors.New("Connection: close")
		}
		return nil
	})
	t.Logf("%d idle connections; signal -> old process gone %v; %s", n, took, movedSummary(s.Log()))
	assert.Empty(t, errs, "second requests on the same connections")
}

// upgradeMidMove starts v1 with flags, opens n idle keep-alive
// connections to it (each answered once, closed at the test's end), and
// upgrades it to the faulty build of version with the -X settings vars: it
// returns once the new generation is in the pidfile.
func upgradeMidMove(t *testing.T, n int, version string, vars []string, flags ...string) (s *server, old, child int, conns []*kaConn) {
	t.Helper()
	faulty := filepath.Join(t.TempDir(), "faulty")
	require.NoError(t, harness.Build(t.Context(), "./integration_test/testdata/faulty", version, faulty, vars...))
	s = startServer(t, bins.v1, "", flags...)
	old, err := s.WaitPID(t.Context(), 0)
	require.NoError(t, err)
	conns = make([]*kaConn, 0, n)
	t.Cleanup(func() {
		for _, k := range conns {
			k.close()
		}
	})
	for range n {
		k, err := dialKA(s.addr)
		require.NoError(t, err)
		conns = append(conns, k)
		_, _, err = k.do("/")
		require.NoError(t, err)
	}
	require.NoError(t, harness.Install(faulty, s.bin))
	require.NoError(t, syscall.Kill(old, syscall.SIGHUP))
	child, err = s.WaitPID(t.Context(), old)
	require.NoError(t, err)
	return s, old, child, conns
}

// TestNewGenerationDiesMidMove: the new generation dies after 500 of 2,000
// idle connections have moved to it. Each connection is then served by
// one process or the other: every one gets one answer, from the old
// generation, which served them on (those the dead one took are given
// back to it).
func TestNewGenerationDiesMidMove(t *testing.T) {
	const n = 2000
	s, old, child, conns := upgradeMidMove(t, n, "dies-mid-move", []string{"dieAfterConns=500"}, "-drain-timeout", "30s", "-idle-grace", "20s")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	require.NoError(t, harness.WaitGone(ctx, child), "the new generation dies after 500 connections")
	require.True(t, harness.Alive(old), "the old generation drains on")
	// The dead generation's pidfile would fail the cleanup's stop.
	os.Remove(s.PIDFile)

	var mu sync.Mutex
	by := map[string]int{}
	var wg sync.WaitGroup
	for _, k := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body, _, err := k.do("/")
			what := body
			if err != nil {
				what = errKind(err)
			} else if extra, _ := k.extra(); extra != "" {
				what = "answered twice: " + extra
			}
			mu.Lock()
			by[what]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	t.Logf("after the new generation died mid-move: %v; %s", by, movedSummary(s.Log()))
	assert.Equal(t, map[string]int{fmt.Sprintf("version=v1 pid=%d", old): n}, by, "every connection answered once, by the old generation")
}

// TestNewGenerationFreezesMidMove: the new generation stops (SIGSTOP, as
// a debugger or a starved container would) after 500 of 2,000 idle
// connections have moved to it. The old generation does not leave the
// rest queued to a process that reads nothing: while it is stopped, all
// but those it took or was sent (one window) are answered by the old
// one. Once it runs again, it answers those, so every connection is
// answered once, by one generation or the other.
func TestNewGenerationFreezesMidMove(t *testing.T) {
	const n, took = 2000, 500
	s, old, child, conns := upgradeMidMove(t, n, "v2", []string{"freezeAfterConns=500"}, "-drain-timeout", "60s", "-idle-grace", "30s")
	defer syscall.Kill(child, syscall.SIGCONT)
	require.Eventually(t, func() bool { return procState(child) == "T" }, 20*time.Second, 10*time.Millisecond,
		"the new generation stops after %d connections", took)

	v1 := fmt.Sprintf("version=v1 pid=%d", old)
	var mu sync.Mutex
	by := map[string]int{}
	var wg sync.WaitGroup
	for _, k := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A long deadline: some wait for the stopped generation.
			k.c.SetDeadline(time.Now().Add(time.Minute))
			_, err := fmt.Fprintf(k.c, "GET / HTTP/1.1\r\nHost: test\r\n\r\n")
			body := ""
			if err == nil {
				body, _, err = k.read()
			}
			what := body
			if err != nil {
				what = errKind(err)
			} else if extra, _ := k.extra(); extra != "" {
				what = "answered twice: " + extra
			}
			mu.Lock()
			by[what]++
			mu.Unlock()
		}()
	}
	// Once the stopped one has read nothing for a while (seconds), the old
	// generation says how many it serves itself (all it neither passed nor
	// sent: how many the new one took before it stopped varies, a race
	// build adopting further ahead of Serve), and answers them.
	byOld := func() int {
		mu.Lock()
		defer mu.Unlock()
		return by[v1]
	}
	var refused int
	require.Eventually(t, func() bool {
		m := stalledLine.FindStringSubmatch(s.Log())
		if m != nil {
			refused, _ = strconv.Atoi(m[1])
		}
		return m != nil
	}, 30*time.Second, 50*time.Millisecond, "the old generation gives up passing to the stopped one")
	assert.GreaterOrEqual(t, refused, n/4, "most connections are not left with the stopped generation")
	assert.Eventually(t, func() bool { return byOld() >= refused }, 30*time.Second, 50*time.Millisecond,
		"while the new generation is stopped, the old one answers the %d it did not pass", refused)
	whileStopped := byOld()
	require.Equal(t, "T", procState(child), "still stopped")
	require.NoError(t, syscall.Kill(child, syscall.SIGCONT))
	wg.Wait()
	t.Logf("served by the old generation: %d of %d; answered by it while the new one was stopped: %d; after it ran again: %v; %s", refused, n, whileStopped, by, movedSummary(s.Log()))
	assert.Equal(t, n, by[v1]+by[fmt.Sprintf("version=v2 pid=%d", child)], "every connection answered once, by one generation or the other: %v", by)
}

// stalledLine is the old generation's word that it passes no more
// connections to a new generation that reads none.
var stalledLine = regexp.MustCompile(`msg="the new generation reads no more connections[^"]*".* refused=(\d+)`)

// procState returns the state letter of pid in /proc (R, S, T, Z...), or
// "" if it cannot be read.
func procState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	// pid (comm) state ...: comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return ""
	}
	return string(b[i+2])
}

// extra returns what arrives on k after an answer within 50 ms: nothing,
// if each request is answered once.
func (k *kaConn) extra() (string, error) {
	k.c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	b := make([]byte, 256)
	n, err := k.br.Read(b)
	return string(b[:n]), err
}

var drainedLine = regexp.MustCompile(`msg=drained .*?took=(\S+)(?: moved=(\d+) kept=(\d+))?`)

// movedSummary sums up the old generations' "drained" lines: how long
// they took and how many connections moved.
func movedSummary(log string) string {
	var took []time.Duration
	moved, kept := 0, 0
	for _, m := range drainedLine.FindAllStringSubmatch(log, -1) {
		if d, err := time.ParseDuration(m[1]); err == nil {
			took = append(took, d)
		}
		a, _ := strconv.Atoi(m[2])
		b, _ := strconv.Atoi(m[3])
		moved, kept = moved+a, kept+b
	}
	if len(took) == 0 {
		return "no drain"
	}
	slices.Sort(took)
	return fmt.Sprintf("%d drains (p50 %v, max %v), %d connections moved, %d kept", len(took), took[len(took)/2], took[len(took)-1], moved, kept)
}
