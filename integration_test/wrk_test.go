//go:build linux

package integration_test

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// wrkUpgrades is how many upgrades each TestWrk subtest performs.
const wrkUpgrades = 20

// TestWrk upgrades the server while wrk, a load generator we did not
// write, keeps 32 keep-alive connections busy over HTTP and over HTTPS,
// and reads wrk's own report: no socket error of any kind, no response
// that is not 2xx or 3xx. wrk reconnects a connection the server closed
// after a "Connection: close" response without counting an error; an
// EOF or reset where it expected a response is a read error, a refused
// connect a connect error.
func TestWrk(t *testing.T) {
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		requireTool(t, "wrk is not installed (Debian: apt-get install wrk)")
	}
	for _, tc := range []struct {
		name string
		tls  bool
	}{{"http", false}, {"https", true}} {
		t.Run(tc.name, func(t *testing.T) {
			var (
				extra  []string
				scheme = "http"
				client = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
			)
			if tc.tls {
				cert, key, pool := testCert(t)
				extra = []string{"-tls-cert", cert, "-tls-key", key}
				scheme = "https"
				client.Transport = &http.Transport{DisableKeepAlives: true, TLSClientConfig: &tls.Config{RootCAs: pool}}
			}
			s := startServer(t, bins.v1, "", append([]string{"-drain-timeout", "10s"}, extra...)...)
			url := scheme + "://" + s.addr + "/"
			pid, err := s.WaitPID(t.Context(), 0)
			require.NoError(t, err)
			requireAnswerAt(t, client, url, "v1", pid)

			// A duration far past what the upgrades take: wrk is stopped
			// with SIGINT once they are done, and prints its report then.
			var out bytes.Buffer
			cmd := exec.Command(wrk, "-t2", "-c32", "-d120s", "--timeout", "5s", "--latency", url)
			cmd.Stdout, cmd.Stderr = &out, &out
			require.NoError(t, cmd.Start())
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			t.Cleanup(func() {
				cmd.Process.Kill()
				<-exited
			})
			time.Sleep(300 * time.Millisecond) // let wrk connect and warm up

			signals := []syscall.Signal{syscall.SIGHUP, syscall.SIGUSR2}
			var took time.Duration
			for i := 1; i <= wrkUpgrades; i++ {
				version, bin := "v2", bins.v2
				if i%2 == 0 {
					version, bin = "v1", bins.v1
				}
				time.Sleep(50 * time.Millisecond) // let load reach the new generation
				newPID, d := s.upgrade(bin, signals[i%len(signals)])
				took += d
				require.NotEqual(t, pid, newPID)
				requireAnswerAt(t, client, url, version, newPID)
				pid = newPID
			}
			time.Sleep(200 * time.Millisecond)

			select {
			case err := <-exited:
				t.Fatalf("wrk ended before the upgrades did (%v):\n%s", err, out.String())
			default:
			}
			require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
			select {
			case err := <-exited:
				exited <- err // for the cleanup
				require.NoError(t, err, "wrk:\n%s", out.String())
			case <-time.After(10 * time.Second):
				t.Fatalf("wrk did not stop on SIGINT:\n%s", out.String())
			}
			r, err := parseWrk(out.String())
			require.NoError(t, err, "wrk's report:\n%s", out.String())
			t.Logf("wrk over %s, %d upgrades (mean signal -> old process gone %v; drains %s): %d requests in %s, %.0f requests/s; latency p50 %s p75 %s p90 %s p99 %s",
				scheme, wrkUpgrades, took/wrkUpgrades, drainTimes(s.Log()), r.requests, r.duration, r.rate,
				r.latency["50%"], r.latency["75%"], r.latency["90%"], r.latency["99%"])
			assert.Zero(t, r.connect, "wrk: connect errors")
			assert.Zero(t, r.read, "wrk: read errors (EOF or reset where a response was due)")
			assert.Zero(t, r.write, "wrk: write errors")
			assert.Zero(t, r.timeout, "wrk: timeouts (no response within 5s)")
			assert.Zero(t, r.non2xx3xx, "wrk: responses that are not 2xx or 3xx")
			assert.Greater(t, r.requests, int64(wrkUpgrades), "wrk made hardly any requests")
			if t.Failed() {
				t.Logf("wrk's report:\n%s", out.String())
			}
		})
	}
}

// requireAnswerAt asserts that a fresh connection to url is answered by
// version and pid.
func requireAnswerAt(t *testing.T, c *http.Client, url, version string, pid int) {
	t.Helper()
	resp, err := c.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, fmt.Sprintf("version=%s pid=%d", version, pid), string(b))
}

// wrkResult is what wrk's report says.
type wrkResult struct {
	requests                      int64
	duration                      string // as wrk prints it, e.g. "9.20s"
	rate                          float64
	connect, read, write, timeout int64 // socket errors: absent from the report when all are 0
	non2xx3xx                     int64 // absent when 0
	latency                       map[string]string
}

var (
	wrkRequestsRE = regexp.MustCompile(`(?m)^\s*(\d+) requests in ([0-9.]+\w+),`)
	wrkRateRE     = regexp.MustCompile(`(?m)^Requests/sec:\s+([0-9.]+)`)
	wrkSocketRE   = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	wrkStatusRE   = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	wrkLatencyRE  = regexp.MustCompile(`(?m)^\s+(50|75|90|99)%\s+(\S+)`)
)

// parseWrk reads wrk 4's report.
func parseWrk(out string) (wrkResult, error) {
	r := wrkResult{latency: map[string]string{}}
	m := wrkRequestsRE.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("no \"N requests in\" line")
	}
	r.requests, _ = strconv.ParseInt(m[1], 10, 64)
	r.duration = m[2]
	if m := wrkRateRE.FindStringSubmatch(out); m != nil {
		r.rate, _ = strconv.ParseFloat(m[1], 64)
	}
	if m := wrkSocketRE.FindStringSubmatch(out); m != nil {
		for i, p := range []*int64{&r.connect, &r.read, &r.write, &r.timeout} {
			*p, _ = strconv.ParseInt(m[i+1], 10, 64)
		}
	}
	if m := wrkStatusRE.FindStringSubmatch(out); m != nil {
		r.non2xx3xx, _ = strconv.ParseInt(m[1], 10, 64)
	}
	for _, m := range wrkLatencyRE.FindAllStringSubmatch(out, -1) {
		r.latency[m[1]+"%"] = m[2]
	}
	return r, nil
}

// TestParseWrk reads a report of wrk 4.1 that has every line the test
// looks at, the ones wrk leaves out when their counts are 0 included.
func TestParseWrk(t *testing.T) {
	const report = `Running 1s test @ http://127.0.0.1:18082/
  1 threads and 2 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    29.16us   55.26us   2.24ms   98.70%
    Req/Sec    16.60k     2.39k   19.83k    54.55%
  Latency Distribution
     50%   17.92ms
     75%   24.94ms
     90%   34.85ms
     99%    1.02s
  18141 requests in 1.10s, 0.97MB read
  Socket errors: connect 1, read 18142, write 3, timeout 4
  Non-2xx or 3xx responses: 18141
Requests/sec:  16502.18
Transfer/sec:      0.88MB
`
	r, err := parseWrk(report)
	require.NoError(t, err)
	assert.Equal(t, wrkResult{
		requests: 18141, duration: "1.10s", rate: 16502.18,
		connect: 1, read: 18142, write: 3, timeout: 4, non2xx3xx: 18141,
		latency: map[string]string{"50%": "17.92ms", "75%": "24.94ms", "90%": "34.85ms", "99%": "1.02s"},
	}, r)
	_, err = parseWrk("unable to connect to 127.0.0.1:1 Connection refused\n")
	assert.Error(t, err)
}
