package main

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestRender(t *testing.T) {
	s := func(p50, p90 int) Series {
		return Series{Summary: Summary{N: 10, Min: ms(p50), P50: ms(p50), P90: ms(p90), Max: ms(p90)}}
	}
	h := s(6, 9)
	h.Phases = &Phases{Start: Summary{N: 10, P50: ms(3), P90: ms(4)}, Adopt: Summary{N: 10, P50: ms(2), P90: ms(2)}, Ready: Summary{N: 10, P50: ms(1), P90: ms(3)}}
	h.ChildFDs.Add(1006)
	h.ParentKept.Add(2)
	r := Results{
		Machine:    Machine{CPUs: 2, GOMAXPROCS: 2, GoVersion: "go1.26", Kernel: "6.1", CPUModel: "CPU"},
		Source:     "abc1234 (library clean)",
		Iterations: 10,
		Latency:    []LatencyPoint{{FDs: 1000, Exec: s(2, 3), ExecFDs: s(2, 4), Handoff: h, Tableflip: s(3, 9), Foreign: s(12, 18)}},
		Servers: []ServerCost{
			{Name: "net/http", Binary: 8 << 20, Stripped: 5 << 20, Runs: 3, Idle: Memory{6 << 20, 6 << 20}, Loaded: Memory{12 << 20, 12 << 20}, Requests: 10000},
			{Name: "handoff", Binary: 9 << 20, Stripped: 6 << 20, Runs: 3, Idle: Memory{7 << 20, 7 << 20}, Loaded: Memory{13 << 20, 14 << 20}, Requests: 10000},
		},
		Wall: 90 * time.Second,
	}
	text := renderText(r)
	for _, want := range []string{
		"full run, 1m30s) of abc1234",
		"6.00ms / 9.00ms",              // handoff p50 / p90
		"3.00× / 3.00×",                // handoff ÷ floor
		"2.00× / 1.00×",                // handoff ÷ tableflip
		"3.00ms / 4.00ms",              // handoff's start phase
		"12.0ms / 18.0ms",              // the foreign child
		"handoff − net/http  1.00 MiB", // the difference row
		"1006",                         // child fds
	} {
		assert.Contains(t, text, want)
	}
	md := renderMarkdown(r)
	assert.True(t, strings.HasPrefix(md, "# handoff scaling"))
	assert.Contains(t, md, "| 1000 | 2.00ms / 3.00ms |")
}
