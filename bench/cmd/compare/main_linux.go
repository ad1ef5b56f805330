// Command compare measures what clients see while a server is upgraded
// under load, with four mechanisms: handoff, tableflip (v1.2.3, its
// README's pattern), SO_REUSEPORT with a graceful shutdown of the old
// process (as the Rust crate axum_graceful_restart restarts), and a plain
// stop-then-start. It builds the servers under ../servers, loads each with
// identical loadgen clients, upgrades it repeatedly, and writes
// results.json, results.md and timeline.png to -out.
//
//	go run ./cmd/compare -quick -out /tmp/bench-quick
//	go run ./cmd/compare -out /tmp/bench-full
//
// See ../../README.md for the method.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

func main() {
	opts, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, errUsage) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(2)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if err := run(ctx, opts, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, opts options, args []string, stdout, progress io.Writer) error {
	began := time.Now()
	logs := filepath.Join(opts.Out, "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return err
	}
	if err := becomeSubreaper(); err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "handoff-compare-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	d := &driver{opts: opts, work: work, logs: logs, progress: progress}
	if err := d.build(ctx); err != nil {
		return err
	}
	reaper := startReaper()
	defer reaper.Stop()

	// Every mechanism once per configuration per run, the order rotating
	// so that none is always first (or right after a given other one).
	var trials []*trial
	for r := 1; r <= opts.Runs; r++ {
		for ci, c := range opts.Configs {
			n := len(opts.Mechanisms)
			for i := range n {
				m := opts.Mechanisms[(i+r-1+ci)%n]
				trials = append(trials, &trial{Run: r, Config: c, Mech: m})
			}
		}
	}
	var failedTrials []string
	done := 0
	first := time.Now()
	for i, t := range trials {
		if ctx.Err() != nil {
			break
		}
		eta := ""
		if done > 0 {
			per := time.Since(first) / time.Duration(done)
			eta = fmt.Sprintf(", about %v left", (per * time.Duration(len(trials)-i)).Round(time.Second))
		}
		t.LoadAvg[0] = loadAvg()
		fmt.Fprintf(progress, "[%d/%d] run %d/%d %-13s %-9s (%v elapsed%s; load average %.1f) ...",
			i+1, len(trials), t.Run, opts.Runs, t.Config.Name(), t.Mech.Name, time.Since(began).Round(time.Second), eta, t.LoadAvg[0])
		start := time.Now()
		t.Err = d.runTrial(ctx, t)
		t.Wall = time.Since(start)
		t.LoadAvg[1] = loadAvg()
		done++
		fmt.Fprintln(progress, " "+trialLine(t))
		if t.Err != nil {
			failedTrials = append(failedTrials, t.id())
			fmt.Fprintf(progress, "    error: %v\n", t.Err)
		}
	}

	var sums []summary
	for _, c := range opts.Configs {
		for _, m := range opts.Mechanisms {
			var ts []*trial
			for _, t := range trials {
				if t.Config == c && t.Mech == m && (t.Err == nil || t.End > 0) {
					ts = append(ts, t)
				}
			}
			if len(ts) > 0 {
				sums = append(sums, summarize(ts))
			}
		}
	}
	setRatios(sums)

	rep := &report{
		Started: began,
		Wall:    time.Since(began).Round(time.Second).String(),
		Machine: machine{CPUs: runtime.NumCPU(), Kernel: kernel(), GoVersion: runtime.Version()},
		Settings: settings{
			Args: args, Runs: opts.Runs, Upgrades: opts.Upgrades,
			IntervalMS: ms(opts.Interval), WarmupMS: ms(opts.Warmup), BaselineMS: ms(opts.Baseline), BucketMS: ms(bucketWidth),
		},
		Summaries: sums,
		Files: map[string]string{
			"results.json": "this file: settings, summaries, every trial and upgrade",
			"results.md":   "the tables",
			"timeline.png": "run 1: ok and failed responses per 10 ms with upgrade signals; a row per mechanism, a column per configuration",
			"logs/":        "each trial's server stderr",
		},
	}
	for _, m := range opts.Mechanisms {
		rep.Settings.Mechanisms = append(rep.Settings.Mechanisms, m.Name)
	}
	for _, c := range opts.Configs {
		rep.Settings.Configs = append(rep.Settings.Configs, c.Name())
		rep.Files["timeline-"+c.Name()+".png"] = "the column of timeline.png for " + c.Name()
	}
	for _, t := range trials {
		if t.Err != nil || t.End > 0 {
			rep.Trials = append(rep.Trials, newTrialRecord(t, opts.Warmup))
		}
	}

	// Timelines of each configuration's first run that got going.
	grid := make([][]*trial, len(opts.Mechanisms))
	for r, m := range opts.Mechanisms {
		grid[r] = make([]*trial, len(opts.Configs))
		for c, cfg := range opts.Configs {
			for _, t := range trials {
				if t.Mech == m && t.Config == cfg && t.End > 0 {
					grid[r][c] = t
					break
				}
			}
		}
	}
	var errs []error
	errs = append(errs, writeTimelines(filepath.Join(opts.Out, "timeline.png"), grid))
	for c, cfg := range opts.Configs {
		col := make([][]*trial, len(grid))
		for r := range grid {
			col[r] = []*trial{grid[r][c]}
		}
		errs = append(errs, writeTimelines(filepath.Join(opts.Out, "timeline-"+cfg.Name()+".png"), col))
	}
	errs = append(errs, writeJSON(filepath.Join(opts.Out, "results.json"), rep))
	errs = append(errs, writeFile(filepath.Join(opts.Out, "results.md"), func(w io.Writer) { writeMarkdown(w, rep, opts.Configs) }))
	writeText(stdout, rep, opts.Configs)
	fmt.Fprintf(progress, "\nwrote %s/{results.json,results.md,timeline.png} in %v\n", opts.Out, time.Since(began).Round(time.Second))
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted after %d of %d trials; partial results written", done, len(trials))
	}
	if len(failedTrials) > 0 {
		return fmt.Errorf("%d trial(s) could not finish: %s", len(failedTrials), strings.Join(failedTrials, ", "))
	}
	return nil
}

// trialLine is the progress line of a finished trial.
func trialLine(t *trial) string {
	m := &t.Metrics
	var ready, gone, gaps []time.Duration
	for _, u := range m.Upgrades {
		ready, gone, gaps = append(ready, u.Ready), append(gone, u.Gone), append(gaps, u.Gap)
	}
	kinds := ""
	for _, k := range failureKinds {
		if m.Kinds[k] > 0 {
			kinds += fmt.Sprintf(" %s=%d", k, m.Kinds[k])
		}
	}
	if kinds != "" {
		kinds = " (" + strings.TrimSpace(kinds) + ")"
	}
	return fmt.Sprintf("%d upgrades, %d requests, %d failed%s; ready p50 %sms, old gone p50 %sms, gap max %sms [%v]",
		len(m.Upgrades), m.Requests, m.Failed, kinds, fmtMS(ms(median(ready))), fmtMS(ms(median(gone))), fmtMS(ms(maxOf(gaps))),
		t.Wall.Round(100*time.Millisecond))
}

// loadAvg returns the 1-minute load average. The comparison itself keeps
// both CPUs busy (measured 2.5-4.7 on a quiet 2-CPU machine); much more
// means something else ran.
func loadAvg() float64 {
	b, _ := os.ReadFile("/proc/loadavg")
	var v float64
	fmt.Sscan(string(b), &v)
	return v
}

func kernel() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return strings.TrimSpace(string(b))
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func writeFile(path string, write func(io.Writer)) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	write(f)
	return f.Close()
}
