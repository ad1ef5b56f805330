//go:build unix

// Command demo shows a hot upgrade under load: it builds two versions of
// examples/httpserver, starts one, drives concurrent HTTP load at it (half
// the clients on keep-alive connections, half with a new connection per
// request), replaces the binary and upgrades it several times with
// `kill -USR2 $(cat app.pid)`, and prints what every client saw. It exits
// non-zero if a single request failed, and stops every process it started.
//
//	go run ./examples/demo
package main

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/handoff-go/handoff/internal/harness"
	"github.com/handoff-go/handoff/internal/loadgen"
)

func main() {
	upgrades := flag.Int("upgrades", 6, "number of hot upgrades")
	clients := flag.Int("clients", 32, "concurrent clients (half keep-alive, half new connection per request)")
	every := flag.Duration("every", time.Second, "time between upgrades")
	flag.Parse()
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	failed, err := run(ctx, *upgrades, *clients, *every)
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(2)
	}
	if failed > 0 {
		os.Exit(1)
	}
}

func run(ctx context.Context, upgrades, clients int, every time.Duration) (failed int64, err error) {
	dir, err := os.MkdirTemp("", "handoff-demo-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)

	fmt.Println("building examples/httpserver as v1 and v2 ...")
	builds := []string{filepath.Join(dir, "httpserver-v1"), filepath.Join(dir, "httpserver-v2")}
	for i, out := range builds {
		if err := harness.Build(ctx, "./examples/httpserver", fmt.Sprintf("v%d", i+1), out); err != nil {
			return 0, err
		}
	}
	bin := filepath.Join(dir, "httpserver")
	if err := harness.Install(builds[0], bin); err != nil {
		return 0, err
	}
	addr, err := harness.FreePort()
	if err != nil {
		return 0, err
	}
	pidPath := filepath.Join(dir, "app.pid")
	srv, err := harness.Start(bin, pidPath, filepath.Join(dir, "server.log"),
		"-addr", addr, "-pidfile", pidPath, "-drain-timeout", "10s")
	if err != nil {
		return 0, err
	}
	defer func() {
		sctx, c := context.WithTimeout(context.Background(), 15*time.Second)
		defer c()
		if serr := srv.Stop(sctx); serr != nil && err == nil {
			err = serr
		}
	}()
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	pid, err := srv.WaitPID(wctx, 0)
	wcancel()
	if err != nil {
		return 0, err
	}
	fmt.Printf("v1 serving on http://%s (pid %d, pidfile %s)\n", addr, pid, pidPath)

	keep, err := loadgen.Start(loadgen.Config{Addr: addr, Clients: max(1, clients/2), Mode: loadgen.KeepAlive})
	if err != nil {
		return 0, err
	}
	fresh, err := loadgen.Start(loadgen.Config{Addr: addr, Clients: max(1, clients-clients/2), Mode: loadgen.NewConn})
	if err != nil {
		keep.Stop()
		return 0, err
	}
	total := func(a, b loadgen.Stats) (req, fail int64) { return a.Requests + b.Requests, a.Failed + b.Failed }
	fmt.Printf("load: %d keep-alive + %d new-connection clients\n", max(1, clients/2), max(1, clients-clients/2))

	var times []time.Duration
	for i := 1; i <= upgrades && ctx.Err() == nil; i++ {
		select {
		case <-ctx.Done():
		case <-time.After(every):
		}
		next := i % 2 // v2 on odd upgrades, v1 on even ones
		if err := harness.Install(builds[next], bin); err != nil {
			return 0, err
		}
		uctx, ucancel := context.WithTimeout(ctx, 30*time.Second)
		newPID, took, err := srv.Upgrade(uctx, syscall.SIGUSR2)
		ucancel()
		if err != nil {
			keep.Stop()
			fresh.Stop()
			return 0, err
		}
		times = append(times, took)
		req, fail := total(keep.Snapshot(), fresh.Snapshot())
		fmt.Printf("upgrade %d/%d: kill -USR2 %d -> v%d pid %d, old process gone after %v; requests %d, failed %d\n",
			i, upgrades, pid, next+1, newPID, took.Round(time.Microsecond), req, fail)
		pid = newPID
	}
	time.Sleep(every / 2)
	ks, fs := keep.Stop(), fresh.Stop()
	req, fail := total(ks, fs)

	fmt.Println()
	fmt.Printf("requests:        %d (keep-alive %d, new connection %d)\n", req, ks.Requests, fs.Requests)
	fmt.Printf("failed requests: %d\n", fail)
	for _, s := range []loadgen.Stats{ks, fs} {
		for _, k := range slices.Sorted(maps.Keys(s.Errors)) {
			fmt.Printf("  %s: %d\n", k, s.Errors[k])
		}
	}
	if len(times) > 0 {
		slices.Sort(times)
		fmt.Printf("signal -> old process gone: p50 %v, max %v over %d upgrades\n",
			times[len(times)/2].Round(time.Microsecond), times[len(times)-1].Round(time.Microsecond), len(times))
	}
	versions := map[string]int64{}
	for _, s := range []loadgen.Stats{ks, fs} {
		for body, n := range s.Bodies {
			v, _, _ := strings.Cut(body, " ")
			versions[strings.TrimPrefix(v, "version=")] += n
		}
	}
	fmt.Print("answered by:    ")
	for _, v := range slices.Sorted(maps.Keys(versions)) {
		fmt.Printf(" %s=%d", v, versions[v])
	}
	fmt.Println()
	if fail > 0 {
		fmt.Println("FAIL: requests were lost")
	} else {
		fmt.Println("OK: no request failed")
	}
	return fail, nil
}
