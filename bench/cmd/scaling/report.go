package main

import (
	"fmt"
	"strings"
	"time"
)

// tables turns results into the tables printed and written to scaling.md.
func tables(r Results) []*table {
	return []*table{latencyTable(r), phaseTable(r), listenPIDTable(r), hygieneTable(r), serverTable(r)}
}

func latencyTable(r Results) *table {
	t := &table{
		title: fmt.Sprintf("Upgrade() → ready, one cold upgrade per fresh parent process: p50 / p90 of %d samples per cell", r.Iterations),
		header: []string{"fds", "exec (floor)", "exec + fds", "handoff", "tableflip",
			"handoff ÷ floor", "tableflip ÷ floor", "handoff ÷ tableflip"},
		notes: []string{
			"floor: fork+exec of the same binary, timed to the child's first byte on a pipe; exec + fds: the same with the listeners inherited",
			"handoff: Upgrade(ctx) returns after the child's ready, the parent's go and the child's live; tableflip: Upgrade() returns on the child's ready byte",
			"ratios are of p50s / of p90s; ÷ floor is against the floor without fds",
			"the mechanisms take turns sample by sample, so drift in the machine's load is shared among them",
		},
	}
	for _, p := range r.Latency {
		t.add(fmt.Sprint(p.FDs), fmtPair(p.Exec.Summary), fmtPair(p.ExecFDs.Summary),
			fmtPair(p.Handoff.Summary), fmtPair(p.Tableflip.Summary),
			fmtRatios(p.Handoff.Summary, p.Exec.Summary), fmtRatios(p.Tableflip.Summary, p.Exec.Summary),
			fmtRatios(p.Handoff.Summary, p.Tableflip.Summary))
	}
	return t
}

func phaseTable(r Results) *table {
	t := &table{
		title:  "Where the time goes, p50 / p90 of each phase on its own (by the wall clock the processes share)",
		header: []string{"fds", "handoff start", "handoff adopt", "handoff ready", "handoff Ready call", "tableflip start", "tableflip adopt", "tableflip ready", "tableflip Ready call"},
		notes: []string{
			"start: Upgrade called → the child's main begins (fork, exec, Go runtime start); adopt: the child's New and Listen calls; ready: the child's Ready → Upgrade returns in the parent",
			"Ready call: the child's Ready called → returned, in the child alone; what a library does there after saying live (handoff: room in the descriptor table for the next upgrade, the control socket) delays the program's next step, not Upgrade",
		},
	}
	cells := func(p *Phases) []string {
		if p == nil {
			return []string{"–", "–", "–", "–"}
		}
		return []string{fmtPair(p.Start), fmtPair(p.Adopt), fmtPair(p.Ready), fmtPair(p.ReadyCall)}
	}
	for _, p := range r.Latency {
		t.add(append(append([]string{fmt.Sprint(p.FDs)}, cells(p.Handoff.Phases)...), cells(p.Tableflip.Phases)...)...)
	}
	return t
}

func hygieneTable(r Results) *table {
	t := &table{
		title:  "Descriptors and processes (min–max over the samples)",
		header: []string{"fds", "handoff child fds", "tableflip child fds", "foreign child fds", "handoff parent keeps", "tableflip parent keeps", "foreign parent keeps", "exec parent keeps"},
	}
	for _, p := range r.Latency {
		t.add(fmt.Sprint(p.FDs), fmtRange(p.Handoff.ChildFDs), fmtRange(p.Tableflip.ChildFDs), fmtRange(p.Foreign.ChildFDs),
			fmtRange(p.Handoff.ParentKept), fmtRange(p.Tableflip.ParentKept), fmtRange(p.Foreign.ParentKept), fmtRange(p.ExecFDs.ParentKept))
	}
	h := r.Hygiene
	t.notes = []string{
		"child fds: the new generation's open descriptors once ready (the fds handed over included)",
		"parent keeps: the old generation's descriptors after Upgrade returned and it closed its listeners (counted once steady), less those it had before listening",
		fmt.Sprintf("driver: %s descriptors over %d samples (flat if one number); %d new generations reaped by the driver as subreaper; %d processes left behind",
			fmtRange(h.DriverFDs), h.Samples, h.Reaped, h.ChildrenLeft),
	}
	return t
}

func serverTable(r Results) *table {
	t := &table{
		title:  "Hello-world HTTP server: size and memory (VmRSS / VmHWM)",
		header: []string{"server", "binary", "stripped", "idle RSS", "idle HWM", "loaded RSS", "loaded HWM", "failed"},
	}
	for _, s := range r.Servers {
		t.add(s.Name, fmtBytes(s.Binary), fmtBytes(s.Stripped), fmtBytes(s.Idle.RSS), fmtBytes(s.Idle.HWM),
			fmtBytes(s.Loaded.RSS), fmtBytes(s.Loaded.HWM), fmt.Sprint(s.Failed))
	}
	if len(r.Servers) == 2 {
		a, b := r.Servers[0], r.Servers[1]
		t.add(b.Name+" − "+a.Name, fmtBytes(b.Binary-a.Binary), fmtBytes(b.Stripped-a.Stripped),
			fmtBytes(b.Idle.RSS-a.Idle.RSS), fmtBytes(b.Idle.HWM-a.Idle.HWM),
			fmtBytes(b.Loaded.RSS-a.Loaded.RSS), fmtBytes(b.Loaded.HWM-a.Loaded.HWM), "")
	}
	if len(r.Servers) > 0 {
		s := r.Servers[0]
		t.notes = []string{fmt.Sprintf("medians of %d runs; idle: %v after start; loaded: right after ≥%d requests from 32 clients (16 keep-alive, 16 a connection per request)",
			s.Runs, idleSettle, s.Requests)}
	}
	return t
}

func listenPIDTable(r Results) *table {
	t := &table{
		title:  "LISTEN_PID exec shim (Options.ForeignChild): Upgrade() → ready, p50 / p90",
		header: []string{"fds", "handoff child", "foreign child via shim", "shim ÷ handoff", "shim start", "shim adopt", "shim ready"},
		notes: []string{
			"foreign child: a systemd-style program (LISTEN_PID checked, LISTEN_FDS taken as go-systemd does, READY=1 by sd_notify) started through /bin/sh so that LISTEN_PID is its PID",
			"its phases are those of the table above; its start includes /bin/sh's start and exec",
		},
	}
	for _, p := range r.Latency {
		row := []string{fmt.Sprint(p.FDs), fmtPair(p.Handoff.Summary), fmtPair(p.Foreign.Summary), fmtRatios(p.Foreign.Summary, p.Handoff.Summary)}
		if ph := p.Foreign.Phases; ph != nil {
			row = append(row, fmtPair(ph.Start), fmtPair(ph.Adopt), fmtPair(ph.Ready))
		}
		t.add(row...)
	}
	return t
}

// header describes the machine and the run.
func header(r Results) string {
	m := r.Machine
	mode := "full"
	if r.Quick {
		mode = "quick"
	}
	return fmt.Sprintf("handoff scaling (%s run, %v) of %s: %d CPUs (GOMAXPROCS %d), %s, %s, Linux %s; load average %s before, %s after\n",
		mode, r.Wall.Round(time.Second), r.Source, m.CPUs, m.GOMAXPROCS, m.CPUModel, m.GoVersion, m.Kernel, r.LoadStart, r.LoadEnd)
}

// renderText is what the command prints.
func renderText(r Results) string {
	var b strings.Builder
	b.WriteString(header(r))
	for _, t := range tables(r) {
		b.WriteString("\n" + t.text())
	}
	return b.String()
}

// renderMarkdown is scaling.md.
func renderMarkdown(r Results) string {
	var b strings.Builder
	b.WriteString("# " + header(r) + "\n")
	b.WriteString("Produced by `go run ./cmd/scaling` in `bench/`; the raw numbers are in scaling.json.\n")
	for _, t := range tables(r) {
		b.WriteString("\n" + t.markdown())
	}
	return b.String()
}
