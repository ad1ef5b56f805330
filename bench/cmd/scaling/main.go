//go:build linux

package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

func main() {
	dispatch() // a re-executed role never returns from here
	var (
		quick      = flag.Bool("quick", false, "fewer samples: under a minute")
		out        = flag.String("out", "", "directory to write scaling.json and scaling.md to")
		iterations = flag.Int("iterations", 0, "samples per latency cell (0: 200, or 20 with -quick)")
		fdList     = flag.String("fds", "1,10,100,1000", "comma-separated counts of listeners to hand over")
		runs       = flag.Int("runs", 0, "runs of each hello server (0: 3, or 1 with -quick)")
		requests   = flag.Int64("requests", 10000, "requests each hello server serves before its memory is read again")
	)
	flag.Parse()
	if err := run(*quick, *out, *iterations, *fdList, *runs, *requests); err != nil {
		fmt.Fprintln(os.Stderr, "scaling:", err)
		os.Exit(1)
	}
}

func run(quick bool, out string, iterations int, fdList string, runs int, requests int64) error {
	start := time.Now()
	counts, err := parseCounts(fdList)
	if err != nil {
		return err
	}
	warmup := 3
	if iterations <= 0 {
		iterations = 200
		if quick {
			iterations = 20
		}
	}
	if runs <= 0 {
		runs = 3
		if quick {
			runs = 1
		}
	}
	if quick {
		warmup = 1
	}
	if out != "" {
		if err := os.MkdirAll(out, 0o755); err != nil {
			return err
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := becomeSubreaper(); err != nil {
		return err
	}
	if err := isolateFDs(); err != nil {
		return err
	}
	r := Results{Machine: machine(), Source: source(), LoadStart: loadAvg(), Quick: quick, Iterations: iterations}

	if r.Latency, err = measureLatency(ctx, counts, iterations, warmup, &r.Hygiene, os.Stderr); err != nil {
		return err
	}
	if r.Hygiene.ChildrenLeft > 0 {
		fmt.Fprintf(os.Stderr, "scaling: WARNING: %d processes left behind\n", r.Hygiene.ChildrenLeft)
	}
	tmp, err := os.MkdirTemp("", "scaling-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if r.Servers, err = measureServers(ctx, tmp, runs, requests, os.Stderr); err != nil {
		return err
	}
	r.Wall = time.Since(start)
	r.LoadEnd = loadAvg()

	fmt.Print("\n" + renderText(r))
	if out == "" {
		return nil
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "scaling.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(out, "scaling.md"), []byte(renderMarkdown(r)), 0o644)
}
