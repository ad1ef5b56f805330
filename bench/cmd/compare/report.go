package main

import (
	"fmt"
	"github.com/handoff-go/handoff/internal/loadgen"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// trial is one load against one mechanism, with its upgrades.
type trial struct {
	Run      int // 1-based
	Config   loadConfig
	Mech     mechanism
	Marks    []upgradeMark
	Stalls   []window      // when the load generator itself did not run
	End      time.Duration // of the load, from its start
	Metrics  trialMetrics
	Timeline timeline
	Errors   map[string]int64 // loadgen's failure kinds, as counted
	Retried  int64            // HTTP/2 requests the client sent again, refused unprocessed
	Versions map[string]int64 // ok responses by the version that answered
	Log      string           // the servers' stderr
	LoadAvg  [2]float64       // 1-minute load average before and after
	Err      error            // the trial could not finish; what it measured so far is kept
	Wall     time.Duration
}

func (t *trial) id() string {
	return fmt.Sprintf("run%d-%s-%s", t.Run, t.Config.Name(), t.Mech.Name)
}

// versions counts ok responses by version from loadgen's body counts
// ("version=v2 pid=123" -> "v2").
func versions(bodies map[string]int64) map[string]int64 {
	v := map[string]int64{}
	for body, n := range bodies {
		f, _, _ := strings.Cut(body, " ")
		v[strings.TrimPrefix(f, "version=")] += n
	}
	return v
}

// summary is one mechanism under one configuration, over every run.
// Counts per run are medians over runs; times per upgrade pool the
// upgrades of every run.
type summary struct {
	Mechanism string `json:"mechanism"`
	Config    string `json:"config"`
	Runs      int    `json:"runs"`
	Upgrades  int    `json:"upgrades"` // upgrades measured, all runs together

	FailedMedian     float64            `json:"failed_per_run_median"`
	FailedPerUpgrade float64            `json:"failed_per_upgrade"` // all runs' failures / all upgrades
	FailedTotal      int64              `json:"failed_total"`
	FailedMaxUpgrade int64              `json:"failed_max_one_upgrade"`
	KindsMedian      map[string]float64 `json:"failed_by_kind_per_run_median"`
	KindsTotal       map[string]int64   `json:"failed_by_kind_total"`
	BaselineFailed   int64              `json:"failed_before_first_upgrade_total"`
	Requests         float64            `json:"requests_per_run_median"`
	// Reconnects: connections keep-alive clients opened per upgrade
	// (from one signal to the next), all runs' over all upgrades; -1 for
	// a configuration whose clients open one per request anyway.
	Reconnects float64 `json:"reconnects_per_upgrade"`

	ReadyP50       float64 `json:"ready_p50_ms"` // signal -> pidfile names the new live PID
	ReadyMax       float64 `json:"ready_max_ms"`
	FirstAnswerP50 float64 `json:"new_pid_answers_p50_ms"` // signal -> first response from the new PID
	FirstAnswerMax float64 `json:"new_pid_answers_max_ms"`
	NoAnswer       int     `json:"upgrades_new_pid_never_answered"`
	GoneP50        float64 `json:"old_gone_p50_ms"` // signal -> old process exited
	GoneMax        float64 `json:"old_gone_max_ms"`
	GapP50         float64 `json:"gap_p50_ms"` // longest time without an ok response, per upgrade
	GapMax         float64 `json:"gap_max_ms"`
	GapBaseline    float64 `json:"gap_baseline_ms_median"` // the same in the baseline window
	StallP50       float64 `json:"loadgen_stall_p50_ms"`   // longest stall of the load generator, per upgrade
	StallMax       float64 `json:"loadgen_stall_max_ms"`
	StallBaseline  float64 `json:"loadgen_stall_baseline_ms_median"`
	// CPU an upgrade costs, p50 over the upgrades where it was read: the
	// new process's until it was seen ready, the old one's from the
	// signal to its exit (serving the load meanwhile included).
	CPUNewP50 float64 `json:"cpu_new_to_ready_p50_ms"`
	CPUOldP50 float64 `json:"cpu_old_signal_to_exit_p50_ms"`

	P50Baseline    float64 `json:"latency_p50_baseline_ms_median"`
	P50During      float64 `json:"latency_p50_during_ms_median"`
	P99Baseline    float64 `json:"latency_p99_baseline_ms_median"`
	P99During      float64 `json:"latency_p99_during_ms_median"`
	PerSecBaseline float64 `json:"ok_per_sec_baseline_median"`
	PerSecDuring   float64 `json:"ok_per_sec_during_median"`

	// VsReference are ratios to the same configuration's tableflip
	// summary: failed (per run), ready, gone (p50), gap (max), p99 and
	// ok_per_sec (during). Missing where tableflip's value is zero or
	// tableflip was not run.
	VsReference map[string]float64 `json:"vs_tableflip,omitempty"`

	Errors []string `json:"errors,omitempty"` // trials that could not finish
}

// ms converts a duration to float milliseconds, to 3 decimals.
func ms(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }

// summarize aggregates the trials of one mechanism under one configuration.
func summarize(trials []*trial) summary {
	var s summary
	if len(trials) == 0 {
		return s
	}
	s.Mechanism, s.Config = trials[0].Mech.Name, trials[0].Config.Name()
	s.Runs = len(trials)
	keepAlive := trials[0].Config.Mode == loadgen.KeepAlive
	var dials int64
	s.KindsMedian, s.KindsTotal = map[string]float64{}, map[string]int64{}
	var (
		failed, requests                                   []float64
		kinds                                              [numKinds][]float64
		ready, answer, gone, gaps, stalls, cpuNew, cpuOld  []time.Duration
		gapBase, stallBase, p50b, p50d, p99b, p99d, rb, rd []float64
	)
	for _, t := range trials {
		m := &t.Metrics
		if t.Err != nil {
			s.Errors = append(s.Errors, t.id()+": "+firstLine(t.Err.Error()))
		}
		failed = append(failed, float64(m.Failed))
		requests = append(requests, float64(m.Requests))
		s.FailedTotal += m.Failed
		s.BaselineFailed += m.BaselineFailed
		for _, k := range failureKinds {
			kinds[k] = append(kinds[k], float64(m.Kinds[k]))
			s.KindsTotal[k.String()] += m.Kinds[k]
		}
		for _, u := range m.Upgrades {
			s.Upgrades++
			s.FailedMaxUpgrade = max(s.FailedMaxUpgrade, u.Failed)
			dials += u.Dials
			ready = append(ready, u.Ready)
			gone = append(gone, u.Gone)
			gaps = append(gaps, u.Gap)
			stalls = append(stalls, u.Stall)
			if u.CPUNew > 0 {
				cpuNew = append(cpuNew, u.CPUNew)
			}
			if u.CPUOld > 0 {
				cpuOld = append(cpuOld, u.CPUOld)
			}
			if u.FirstAnswer >= 0 {
				answer = append(answer, u.FirstAnswer)
			} else {
				s.NoAnswer++
			}
		}
		gapBase = append(gapBase, ms(m.Baseline.Gap))
		stallBase = append(stallBase, ms(m.Baseline.Stall))
		p50b, p50d = append(p50b, ms(m.Baseline.P50)), append(p50d, ms(m.During.P50))
		p99b, p99d = append(p99b, ms(m.Baseline.P99)), append(p99d, ms(m.During.P99))
		rb, rd = append(rb, m.Baseline.PerSec), append(rd, m.During.PerSec)
	}
	s.FailedMedian, s.Requests = median(failed), median(requests)
	s.Reconnects = -1
	if s.Upgrades > 0 {
		s.FailedPerUpgrade = float64(s.FailedTotal) / float64(s.Upgrades)
		if keepAlive {
			s.Reconnects = float64(dials) / float64(s.Upgrades)
		}
	}
	for _, k := range failureKinds {
		s.KindsMedian[k.String()] = median(kinds[k])
	}
	s.ReadyP50, s.ReadyMax = ms(median(ready)), ms(maxOf(ready))
	s.FirstAnswerP50, s.FirstAnswerMax = ms(median(answer)), ms(maxOf(answer))
	s.GoneP50, s.GoneMax = ms(median(gone)), ms(maxOf(gone))
	s.GapP50, s.GapMax = ms(median(gaps)), ms(maxOf(gaps))
	s.GapBaseline = median(gapBase)
	s.StallP50, s.StallMax = ms(median(stalls)), ms(maxOf(stalls))
	s.StallBaseline = median(stallBase)
	s.CPUNewP50, s.CPUOldP50 = ms(median(cpuNew)), ms(median(cpuOld))
	s.P50Baseline, s.P50During = median(p50b), median(p50d)
	s.P99Baseline, s.P99During = median(p99b), median(p99d)
	s.PerSecBaseline, s.PerSecDuring = math.Round(median(rb)), math.Round(median(rd))
	return s
}

func maxOf[T ~int64 | ~float64](xs []T) T {
	if len(xs) == 0 {
		return 0
	}
	return slices.Max(xs)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// setRatios fills VsReference of every summary from the reference one of
// the same configuration.
func setRatios(sums []summary) {
	for i := range sums {
		s := &sums[i]
		var ref *summary
		for j := range sums {
			if sums[j].Config == s.Config && sums[j].Mechanism == reference {
				ref = &sums[j]
			}
		}
		if ref == nil {
			continue
		}
		s.VsReference = map[string]float64{}
		for _, r := range []struct {
			name     string
			num, den float64
		}{
			{"failed", s.FailedMedian, ref.FailedMedian},
			{"ready", s.ReadyP50, ref.ReadyP50},
			{"gone", s.GoneP50, ref.GoneP50},
			{"gap", s.GapMax, ref.GapMax},
			{"p99", s.P99During, ref.P99During},
			{"ok_per_sec", s.PerSecDuring, ref.PerSecDuring},
		} {
			if r.den != 0 {
				s.VsReference[r.name] = math.Round(r.num/r.den*1000) / 1000
			}
		}
	}
}

// report is everything results.json holds.
type report struct {
	Started   time.Time         `json:"started"`
	Wall      string            `json:"wall_time"`
	Machine   machine           `json:"machine"`
	Settings  settings          `json:"settings"`
	Summaries []summary         `json:"summaries"`
	Trials    []trialRecord     `json:"trials"`
	Files     map[string]string `json:"files"`
}

type machine struct {
	CPUs      int    `json:"cpus"`
	Kernel    string `json:"kernel"`
	GoVersion string `json:"go_version"`
}

type settings struct {
	Args       []string `json:"args"`
	Runs       int      `json:"runs"`
	Upgrades   int      `json:"upgrades_per_run"`
	IntervalMS float64  `json:"interval_ms"`
	WarmupMS   float64  `json:"warmup_ms"`
	BaselineMS float64  `json:"baseline_ms"`
	BucketMS   float64  `json:"timeline_bucket_ms"`
	Mechanisms []string `json:"mechanisms"`
	Configs    []string `json:"configs"`
}

// trialRecord is one trial in results.json.
type trialRecord struct {
	ID        string           `json:"id"`
	Run       int              `json:"run"`
	Config    string           `json:"config"`
	Mechanism string           `json:"mechanism"`
	Error     string           `json:"error,omitempty"`
	Log       string           `json:"log"`
	LoadMS    float64          `json:"load_ms"`
	LoadAvg   [2]float64       `json:"loadavg_1min_before_after"`
	Requests  int64            `json:"requests"`
	Failed    int64            `json:"failed"`
	Kinds     map[string]int64 `json:"failed_by_kind"`
	RawKinds  map[string]int64 `json:"failed_by_loadgen_kind"`
	Retried   int64            `json:"retried_refused_unprocessed,omitempty"`
	Versions  map[string]int64 `json:"ok_by_version"`
	Baseline  windowRecord     `json:"baseline"`
	During    windowRecord     `json:"during"`
	Upgrades  []upgradeRecord  `json:"upgrades"`
}

type windowRecord struct {
	OK      int64   `json:"ok"`
	Failed  int64   `json:"failed"`
	PerSec  float64 `json:"ok_per_sec"`
	P50MS   float64 `json:"p50_ms"`
	P99MS   float64 `json:"p99_ms"`
	GapMS   float64 `json:"longest_gap_ms"`
	StallMS float64 `json:"loadgen_stall_ms"`
	FromMS  float64 `json:"from_ms"`
	ToMS    float64 `json:"to_ms"`
}

type upgradeRecord struct {
	SignalMS      float64          `json:"signal_at_ms"`
	OldPID        int              `json:"old_pid"`
	NewPID        int              `json:"new_pid"`
	ReadyMS       float64          `json:"ready_ms"`
	NewAnswersMS  *float64         `json:"new_pid_answers_ms"` // null: never answered
	GoneMS        float64          `json:"old_gone_ms"`
	GapMS         float64          `json:"longest_gap_ms"`
	StallMS       float64          `json:"loadgen_stall_ms"`
	CPUNewMS      float64          `json:"cpu_new_to_ready_ms"`
	CPUOldMS      float64          `json:"cpu_old_signal_to_exit_ms"`
	Failed        int64            `json:"failed"`
	FailedByKinds map[string]int64 `json:"failed_by_kind,omitempty"`
}

func kindMap(k [numKinds]int64) map[string]int64 {
	m := map[string]int64{}
	for _, kk := range failureKinds {
		if k[kk] > 0 {
			m[kk.String()] = k[kk]
		}
	}
	return m
}

func newTrialRecord(t *trial, warmup time.Duration) trialRecord {
	m := &t.Metrics
	r := trialRecord{
		ID: t.id(), Run: t.Run, Config: t.Config.Name(), Mechanism: t.Mech.Name,
		Log: t.Log, LoadMS: ms(t.End), LoadAvg: t.LoadAvg, Requests: m.Requests, Failed: m.Failed,
		Kinds: kindMap(m.Kinds), RawKinds: t.Errors, Versions: t.Versions, Retried: t.Retried,
	}
	if t.Err != nil {
		r.Error = t.Err.Error()
	}
	first := t.End
	if len(t.Marks) > 0 {
		first = t.Marks[0].Signal
	}
	win := func(w windowStats, from, to time.Duration) windowRecord {
		return windowRecord{OK: w.OK, Failed: w.Failed, PerSec: math.Round(w.PerSec), P50MS: ms(w.P50), P99MS: ms(w.P99),
			GapMS: ms(w.Gap), StallMS: ms(w.Stall), FromMS: ms(from), ToMS: ms(to)}
	}
	r.Baseline = win(m.Baseline, warmup, first)
	r.During = win(m.During, first, t.End)
	for i, u := range m.Upgrades {
		ur := upgradeRecord{
			SignalMS: ms(t.Marks[i].Signal), OldPID: u.OldPID, NewPID: u.NewPID,
			ReadyMS: ms(u.Ready), GoneMS: ms(u.Gone), GapMS: ms(u.Gap), StallMS: ms(u.Stall),
			CPUNewMS: ms(u.CPUNew), CPUOldMS: ms(u.CPUOld),
			Failed: u.Failed, FailedByKinds: kindMap(u.Kinds),
		}
		if u.FirstAnswer >= 0 {
			v := ms(u.FirstAnswer)
			ur.NewAnswersMS = &v
		}
		r.Upgrades = append(r.Upgrades, ur)
	}
	return r
}

// loadRange returns the lowest and highest load average the trials saw.
func loadRange(trials []trialRecord) (lo, hi float64, ok bool) {
	for i, t := range trials {
		for _, v := range t.LoadAvg {
			if i == 0 && !ok {
				lo, hi, ok = v, v, true
			}
			lo, hi = min(lo, v), max(hi, v)
		}
	}
	return lo, hi, ok
}

// byConfig returns the summaries of one configuration, in mechanism order.
func byConfig(sums []summary, config string) []summary {
	var out []summary
	for _, s := range sums {
		if s.Config == config {
			out = append(out, s)
		}
	}
	return out
}

// fmtMS formats milliseconds compactly: 0.41, 12.3, 1520.
func fmtMS(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v < 10:
		return fmt.Sprintf("%.2f", v)
	case v < 100:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.0f", v)
}

// fmtCount formats a median count: integral medians without decimals.
func fmtCount(v float64) string {
	if v == math.Trunc(v) {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

func fmtRatio(s summary, name string) string {
	if s.Mechanism == reference {
		return "1"
	}
	r, ok := s.VsReference[name]
	if !ok {
		return "–"
	}
	return fmt.Sprintf("%.2f", r)
}

// tables returns, for one configuration, the rows of the three tables the
// text and Markdown reports print: failures, timings, ratios.
func tables(sums []summary) (failures, timings, ratios [][]string) {
	failures = [][]string{{"mechanism", "failed/run", "per upgrade", "max in 1 upgrade", "refused", "reset", "EOF", "timeout", "non-200", "other", "all runs", "reconnects/upgrade"}}
	timings = [][]string{{"mechanism", "ready p50/max", "new PID answers p50", "old gone p50/max", "gap p50/max (baseline)", "loadgen stall p50/max (baseline)", "p50 base→during", "p99 base→during", "ok/s base→during", "CPU new→ready / old signal→exit p50"}}
	ratios = [][]string{{"mechanism", "failed", "ready p50", "old gone p50", "gap max", "p99 during", "ok/s during"}}
	for _, s := range sums {
		row := []string{s.Mechanism, fmtCount(s.FailedMedian), fmt.Sprintf("%.2f", s.FailedPerUpgrade), fmt.Sprint(s.FailedMaxUpgrade)}
		for _, k := range failureKinds {
			row = append(row, fmtCount(s.KindsMedian[k.String()]))
		}
		reconnects := "—"
		if s.Reconnects >= 0 {
			reconnects = fmt.Sprintf("%.1f", s.Reconnects)
		}
		row = append(row, fmt.Sprintf("%d in %d upgrades", s.FailedTotal, s.Upgrades), reconnects)
		failures = append(failures, row)

		answers := fmtMS(s.FirstAnswerP50)
		if s.NoAnswer > 0 {
			answers += fmt.Sprintf(" (%d never)", s.NoAnswer)
		}
		timings = append(timings, []string{
			s.Mechanism,
			fmtMS(s.ReadyP50) + " / " + fmtMS(s.ReadyMax),
			answers,
			fmtMS(s.GoneP50) + " / " + fmtMS(s.GoneMax),
			fmtMS(s.GapP50) + " / " + fmtMS(s.GapMax) + " (" + fmtMS(s.GapBaseline) + ")",
			fmtMS(s.StallP50) + " / " + fmtMS(s.StallMax) + " (" + fmtMS(s.StallBaseline) + ")",
			fmtMS(s.P50Baseline) + " → " + fmtMS(s.P50During),
			fmtMS(s.P99Baseline) + " → " + fmtMS(s.P99During),
			fmt.Sprintf("%.0f → %.0f", s.PerSecBaseline, s.PerSecDuring),
			fmtMS(s.CPUNewP50) + " / " + fmtMS(s.CPUOldP50),
		})
		ratios = append(ratios, []string{s.Mechanism, fmtRatio(s, "failed"), fmtRatio(s, "ready"), fmtRatio(s, "gone"),
			fmtRatio(s, "gap"), fmtRatio(s, "p99"), fmtRatio(s, "ok_per_sec")})
	}
	return failures, timings, ratios
}

// writeText prints the tables for a terminal.
func writeText(w io.Writer, rep *report, configs []loadConfig) {
	fmt.Fprintf(w, "\n%d run(s) × %d upgrades per mechanism and configuration, one every %v, mechanisms alternating; medians over runs.\n",
		rep.Settings.Runs, rep.Settings.Upgrades, time.Duration(rep.Settings.IntervalMS*1e6))
	fmt.Fprintln(w, "Times in ms from the upgrade signal (stopstart: SIGTERM). gap: longest time without a successful response;")
	fmt.Fprintln(w, "loadgen stall: longest time the load generator itself did not run (a gap that short may be the clients').")
	for _, c := range configs {
		sums := byConfig(rep.Summaries, c.Name())
		if len(sums) == 0 {
			continue
		}
		f, t, r := tables(sums)
		fmt.Fprintf(w, "\n== %s (%s) ==\n", c.Title(), c.Name())
		for _, tab := range []struct {
			title string
			rows  [][]string
		}{{"failed requests", f}, {"timings (ms), latency and throughput", t}, {"ratio to " + reference, r}} {
			fmt.Fprintf(w, "-- %s\n", tab.title)
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			for _, row := range tab.rows {
				fmt.Fprintln(tw, strings.Join(row, "\t")+"\t")
			}
			tw.Flush()
		}
		for _, s := range sums {
			for _, e := range s.Errors {
				fmt.Fprintf(w, "!! %s\n", e)
			}
		}
	}
}

// writeMarkdown writes results.md.
func writeMarkdown(w io.Writer, rep *report, configs []loadConfig) {
	st := rep.Settings
	fmt.Fprintf(w, "# Upgrade under load: handoff, tableflip, SO_REUSEPORT, stop/start\n\n")
	fmt.Fprintf(w, "Started %s, took %s; %d CPUs, Linux %s, %s. Command: `go run ./cmd/compare %s`.\n\n",
		rep.Started.Format(time.RFC3339), rep.Wall, rep.Machine.CPUs, rep.Machine.Kernel, rep.Machine.GoVersion, strings.Join(st.Args, " "))
	fmt.Fprintf(w, "Each mechanism serves `GET /` with the same handler; %d run(s) of every mechanism and configuration, "+
		"mechanisms alternating; in each, %.0f ms of warm-up and %.0f ms of baseline load, then %d upgrades one every %.0f ms "+
		"(binary replaced by atomic rename before each). Counts per run and latencies are medians over runs; "+
		"times per upgrade pool every upgrade of every run. Ratios are to tableflip in the same configuration.\n\n",
		st.Runs, st.WarmupMS, st.BaselineMS, st.Upgrades, st.IntervalMS)
	if lo, hi, ok := loadRange(rep.Trials); ok {
		fmt.Fprintf(w, "1-minute load average at the trials' starts and ends: %.1f to %.1f (the comparison alone measured 2.5–4.7 on a quiet 2-CPU machine; clearly more means other work shared the CPUs).\n\n", lo, hi)
	}
	fmt.Fprintln(w, "- **ready**: signal → the pidfile names the new, live PID. **new PID answers**: signal → first response from it.")
	fmt.Fprintln(w, "- **old gone**: signal → the old process has exited (`/proc/PID/stat` gone or state Z).")
	fmt.Fprintln(w, "- **gap**: the longest time without any successful response between one upgrade signal and the next; (baseline): the same in the pre-upgrade window.")
	fmt.Fprintln(w, "- **loadgen stall**: the longest time the load generator's own process did not run (a 1 ms sleep woke more than 5 ms late), in the same windows: a gap no longer than this may be the clients', not the server's. A lower bound.")
	fmt.Fprintln(w, "- **CPU**: the new process's CPU time (all threads, /proc/PID/task/*/schedstat) from its start until it was seen ready, and the old process's from the signal until it exited (wait4's rusage less what it had used before the signal; serving the load while it drained included), p50 over the upgrades.")
	fmt.Fprintln(w, "- **base→during**: the pre-upgrade window vs. from the first signal to the end of the load.")
	fmt.Fprintln(w, "- stopstart's signal is SIGTERM; the driver starts the new build once the old one has exited. Its refused count depends on how fast clients retry (they do not back off); its gap is the downtime.")
	for _, c := range configs {
		sums := byConfig(rep.Summaries, c.Name())
		if len(sums) == 0 {
			continue
		}
		f, t, r := tables(sums)
		fmt.Fprintf(w, "\n## %s (`%s`)\n", c.Title(), c.Name())
		for _, tab := range []struct {
			title string
			rows  [][]string
		}{{"Failed requests", f}, {"Timings (ms), latency and throughput", t}, {"Ratio to " + reference, r}} {
			fmt.Fprintf(w, "\n%s\n\n", tab.title)
			for i, row := range tab.rows {
				fmt.Fprintln(w, "| "+strings.Join(row, " | ")+" |")
				if i == 0 {
					fmt.Fprintln(w, "|"+strings.Repeat("---|", len(row)))
				}
			}
		}
		for _, s := range sums {
			for _, e := range s.Errors {
				fmt.Fprintf(w, "\n**Error:** %s\n", e)
			}
		}
	}
	fmt.Fprintf(w, "\n![timeline](timeline.png)\n\n")
	fmt.Fprintf(w, "Files: %s.\n", strings.Join(slices.Sorted(maps.Keys(rep.Files)), ", "))
}
