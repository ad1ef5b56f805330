//go:build linux

package integration_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
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

// nginxUpgrades is how many upgrades TestNginxUpstreamPOST performs.
const nginxUpgrades = 20

// nginxConf is a reverse proxy to one upstream with a keep-alive pool,
// every path inside dir, so that nothing outside it is touched. nginx
// never retries a POST that it has sent (it is not idempotent): one sent
// on a pooled connection that the old generation closed fails as a 502.
// {{keepalive}} is how long a pooled connection may idle before nginx
// closes it (nginx's default: 60s).
const nginxConf = `daemon off;
master_process off;
worker_processes 1;
pid {{dir}}/nginx.pid;
error_log {{dir}}/error.log info;
events { worker_connections 1024; }
http {
	access_log off;
	client_body_temp_path {{dir}}/client_body;
	proxy_temp_path {{dir}}/proxy;
	fastcgi_temp_path {{dir}}/fastcgi;
	uwsgi_temp_path {{dir}}/uwsgi;
	scgi_temp_path {{dir}}/scgi;
	keepalive_requests 1000000;
	upstream app {
		server {{upstream}};
		keepalive 32;
		keepalive_timeout {{keepalive}};
	}
	server {
		listen {{listen}};
		location / {
			proxy_pass http://app;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
		}
	}
}
`

// TestNginxUpstreamPOST puts nginx in front of the server, with a
// keep-alive pool of upstream connections, and upgrades the server while
// clients POST through nginx: every answer must be the server's 200, and
// nginx's error log must show no failed upstream connection.
//
// "busy pool" is traffic that keeps the pool in use: steady clients and
// bursts. "idle pool" leaves the pool idle through the old generation's
// IdleGrace (Options' default, 1s, counted from about when the pidfile
// names the new generation), with nginx's default keepalive_timeout
// (60s), and POSTs around the moment the old generation would close idle
// connections it could not move: a POST nginx sent on one then would fail
// as a 502, the race of every keep-alive pool whose server closes idle
// connections first (measured before connections moved: 4 of 1,421 over
// 20 upgrades). The idle connections move to the new generation instead,
// so none is closed under nginx.
func TestNginxUpstreamPOST(t *testing.T) {
	nginx, err := exec.LookPath("nginx")
	if err != nil {
		nginx, err = exec.LookPath("/usr/sbin/nginx") // not in a user's PATH on Debian
	}
	if err != nil {
		requireTool(t, "nginx is not installed (Debian: apt-get install nginx-light)")
	}
	t.Run("busy pool", func(t *testing.T) {
		s, px, c := startNginxed(t, nginx, "60s")
		// Steady clients keep a few upstream connections busy; bursts
		// open more, which then sit idle in nginx's pool until the next
		// burst, the way a pool looks under traffic that varies.
		const steady, burst = 8, 24
		var (
			stop   atomic.Bool
			bursts int
			wg     sync.WaitGroup
		)
		for i := range steady {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := 0; !stop.Load(); n++ {
					c.post("/", 100+(n*997+i*131)%4000)
				}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; !stop.Load(); n++ {
				c.concurrently(burst, func(i int) { c.post("/", 100+(n*389+i*53)%4000) })
				bursts++
				time.Sleep(time.Duration(100+(n*137)%500) * time.Millisecond) // pooled connections idle meanwhile
			}
		}()
		time.Sleep(200 * time.Millisecond) // let nginx fill its pool
		for i := 1; i <= nginxUpgrades; i++ {
			time.Sleep(50 * time.Millisecond) // let load reach the new generation
			nginxUpgrade(t, s, i)
		}
		time.Sleep(200 * time.Millisecond)
		stop.Store(true)
		wg.Wait()
		c.report(t, s, px, fmt.Sprintf("%d steady clients, %d bursts of %d", steady, bursts, burst))
	})
	t.Run("idle pool", func(t *testing.T) {
		s, px, c := startNginxed(t, nginx, "60s")
		for i := 1; i <= nginxUpgrades; i++ {
			// 32 requests at once, each served for 100ms, fill nginx's
			// pool (keepalive 32) with connections that then sit idle.
			c.concurrently(32, func(int) { c.post("/sleep?d=100ms", 1000) })
			time.Sleep(50 * time.Millisecond)
			old, err := s.WaitPID(t.Context(), 0)
			require.NoError(t, err)
			probed := make(chan struct{})
			go func() {
				defer close(probed)
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				if _, err := s.WaitPID(ctx, old); err != nil {
					return // the upgrade fails the test
				}
				// The old generation drains from now; POST every 2ms
				// around the end of its IdleGrace.
				t0 := time.Now()
				time.Sleep(975 * time.Millisecond)
				var wg sync.WaitGroup
				for time.Since(t0) < 1075*time.Millisecond {
					wg.Add(1)
					go func() {
						defer wg.Done()
						c.post("/", 1000)
					}()
					time.Sleep(2 * time.Millisecond)
				}
				wg.Wait()
			}()
			nginxUpgrade(t, s, i)
			<-probed
		}
		c.report(t, s, px, "pool idle, POSTs around the end of IdleGrace")
	})
}

// startNginxed starts the server and nginx in front of it, and a client
// of nginx; keepalive is nginx's keepalive_timeout for its upstream pool.
func startNginxed(t *testing.T, nginx, keepalive string) (*server, *nginxProxy, *nginxClient) {
	t.Helper()
	s := startServer(t, bins.v1, "", "-drain-timeout", "10s")
	pid, err := s.WaitPID(t.Context(), 0)
	require.NoError(t, err)
	s.requireAnswer("v1", pid)
	px := startNginx(t, nginx, s.addr, keepalive)
	c := &nginxClient{
		url: "http://" + px.addr,
		c: &http.Client{
			Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true},
			Timeout:   10 * time.Second,
		},
		failed: map[string]int{},
	}
	t.Cleanup(c.c.CloseIdleConnections)
	return s, px, c
}

// nginxUpgrade is upgrade i of a test through nginx: to v2 and back,
// by SIGHUP and SIGUSR2 in turn.
func nginxUpgrade(t *testing.T, s *server, i int) {
	t.Helper()
	version, bin, sig := "v2", bins.v2, syscall.SIGHUP
	if i%2 == 0 {
		version, bin, sig = "v1", bins.v1, syscall.SIGUSR2
	}
	old, err := s.WaitPID(t.Context(), 0)
	require.NoError(t, err)
	pid, _ := s.upgrade(bin, sig)
	require.NotEqual(t, old, pid)
	s.requireAnswer(version, pid)
}

// nginxClient POSTs through nginx with Go's client, which never retries
// a POST, and counts what is not the server's 200.
type nginxClient struct {
	url                string
	c                  *http.Client
	requests, failures atomic.Int64
	mu                 sync.Mutex
	failed             map[string]int // what failed, and how often
	when               []string       // when the first ones failed, to set beside the server's log
}

func (c *nginxClient) post(path string, size int) {
	c.requests.Add(1)
	what := func() string {
		resp, err := c.c.Post(c.url+path, "text/plain", bytes.NewReader(bytes.Repeat([]byte{'x'}, size)))
		if err != nil {
			return err.Error()
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case err != nil:
			return fmt.Sprintf("status %d, reading the body: %v", resp.StatusCode, err)
		case resp.StatusCode != http.StatusOK:
			return fmt.Sprintf("status %d: %.60q", resp.StatusCode, b)
		case !bytes.HasPrefix(b, []byte("version=")):
			return fmt.Sprintf("status 200 with a body not the server's: %.60q", b)
		}
		return ""
	}()
	if what != "" {
		c.failures.Add(1)
		c.mu.Lock()
		c.failed[what]++
		if len(c.when) < 20 {
			c.when = append(c.when, time.Now().UTC().Format("15:04:05.000"))
		}
		c.mu.Unlock()
	}
}

// concurrently runs f(0) ... f(n-1) at once and waits for them.
func (c *nginxClient) concurrently(n int, f func(i int)) {
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(i)
		}()
	}
	wg.Wait()
}

// report logs and checks what the client counted and what nginx logged
// about its upstream.
func (c *nginxClient) report(t *testing.T, s *server, px *nginxProxy, load string) {
	t.Helper()
	t.Logf("POSTs through nginx (%s): %d requests, %d upgrades, %d failed; old generations drained in %s",
		load, c.requests.Load(), nginxUpgrades, c.failures.Load(), drainTimes(s.Log()))
	c.mu.Lock()
	for what, n := range c.failed {
		t.Logf("  %d× %s", n, what)
	}
	if len(c.when) > 0 {
		t.Logf("  failed at (UTC) %s", strings.Join(c.when, " "))
	}
	c.mu.Unlock()
	assert.Zero(t, c.failures.Load(), "requests through nginx that were not the server's 200")
	assert.Greater(t, c.requests.Load(), int64(nginxUpgrades))

	// nginx logs an upstream connection that failed even when it retried
	// the request on another; a POST it cannot retry.
	var upstreamErrs []string
	for _, line := range strings.Split(px.errorLog(), "\n") {
		if strings.Contains(line, "upstream") &&
			(strings.Contains(line, "prematurely closed") || strings.Contains(line, "Connection reset") || strings.Contains(line, "[error]")) {
			upstreamErrs = append(upstreamErrs, line)
		}
	}
	for _, line := range upstreamErrs {
		t.Logf("nginx: %s", line)
	}
	assert.Empty(t, upstreamErrs, "nginx saw upstream connections fail")
}

// nginxProxy is an nginx a test started.
type nginxProxy struct {
	addr string // where it listens
	dir  string // its config, pid, logs and temp files
}

// errorLog returns what nginx has written to its error log so far.
func (p *nginxProxy) errorLog() string {
	b, _ := os.ReadFile(filepath.Join(p.dir, "error.log"))
	return string(b)
}

// startNginx starts nginx in front of upstream, with its config, pid,
// logs and temp files in a temp dir, waits until it proxies a request,
// and stops it when the test ends.
func startNginx(t *testing.T, nginx, upstream, keepalive string) *nginxProxy {
	t.Helper()
	dir := t.TempDir()
	listen, err := harness.FreePort()
	require.NoError(t, err)
	conf := strings.NewReplacer("{{dir}}", dir, "{{upstream}}", upstream, "{{listen}}", listen, "{{keepalive}}", keepalive).Replace(nginxConf)
	confPath := filepath.Join(dir, "nginx.conf")
	require.NoError(t, os.WriteFile(confPath, []byte(conf), 0o644))
	logf, err := os.Create(filepath.Join(dir, "nginx.out"))
	require.NoError(t, err)
	defer logf.Close()
	// -e: the log of start-up, before nginx has read error_log.
	cmd := exec.Command(nginx, "-p", dir, "-c", confPath, "-e", filepath.Join(dir, "error.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	px := &nginxProxy{addr: listen, dir: dir}
	logs := func() string {
		out, _ := os.ReadFile(filepath.Join(dir, "nginx.out"))
		return string(out) + px.errorLog()
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGQUIT) // graceful: finish what is in flight
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			t.Errorf("nginx did not stop on SIGQUIT within 10s; killing it")
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		if t.Failed() {
			t.Logf("nginx's log:\n%s", logs())
		}
	})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: time.Second}
	for {
		resp, err := c.Get("http://" + listen + "/")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && strings.HasPrefix(string(b), "version=") {
				return px
			}
		}
		select {
		case <-exited:
			t.Fatalf("nginx exited at start:\n%s", logs())
		case <-ctx.Done():
			t.Fatalf("nginx did not proxy a request within 10s (last error: %v):\n%s", err, logs())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

var drainedRE = regexp.MustCompile(`msg=drained .*took=(\S+)`)

// drainTimes sums up how long the server's old generations took to drain,
// from their "drained" log lines.
func drainTimes(log string) string {
	var ds []time.Duration
	for _, m := range drainedRE.FindAllStringSubmatch(log, -1) {
		if d, err := time.ParseDuration(m[1]); err == nil {
			ds = append(ds, d)
		}
	}
	if len(ds) == 0 {
		return "(no drain logged)"
	}
	slices.Sort(ds)
	return fmt.Sprintf("p50 %v, max %v (%d drains)", ds[len(ds)/2].Round(time.Millisecond), ds[len(ds)-1].Round(time.Millisecond), len(ds))
}
