package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/handoff-go/handoff/internal/loadgen"
)

const msec = time.Millisecond

func TestClassify(t *testing.T) {
	for in, want := range map[string]kind{
		"":                         kindOK,
		"dial: connection refused": kindRefused,
		"read: connection reset":   kindReset,
		"write: connection reset":  kindReset,
		"write: broken pipe":       kindReset,
		"read: EOF":                kindEOF,
		"read: unexpected EOF":     kindEOF,
		"read: timeout":            kindTimeout,
		"dial: timeout":            kindTimeout,
		"status 503":               kindStatus,
		"malformed: status line":   kindOther,
		"dial: no route to host":   kindOther,
	} {
		assert.Equal(t, want, classify(in), in)
	}
}

func TestBodyPID(t *testing.T) {
	assert.Equal(t, int32(4312), bodyPID([]byte("version=v2 pid=4312")))
	assert.Equal(t, int32(0), bodyPID([]byte("version=v2")))
	assert.Equal(t, int32(0), bodyPID([]byte("pid=x")))
	assert.Equal(t, int32(0), bodyPID(nil))
}

func TestRecorderOrdersEvents(t *testing.T) {
	base := time.Now()
	r := newRecorder(base, 2)
	r.on(loadgen.Result{Client: 1, Start: base.Add(5 * msec), Latency: msec, Body: []byte("version=v1 pid=7")})
	r.on(loadgen.Result{Client: 0, Start: base.Add(1 * msec), Latency: msec, Kind: "read: EOF"})
	r.on(loadgen.Result{Client: 0, Start: base.Add(3 * msec), Latency: 4 * msec, Body: []byte("version=v1 pid=7")})
	ev := r.events()
	require.Len(t, ev, 3)
	assert.Equal(t, event{end: 2 * msec, lat: msec, kind: kindEOF}, ev[0])
	assert.Equal(t, event{end: 6 * msec, lat: msec, pid: 7, kind: kindOK}, ev[1])
	assert.Equal(t, event{end: 7 * msec, lat: 4 * msec, pid: 7, kind: kindOK}, ev[2])
}

func TestQuantileMedian(t *testing.T) {
	xs := []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	assert.Equal(t, time.Duration(5), quantile(xs, 0.5))
	assert.Equal(t, time.Duration(10), quantile(xs, 0.99))
	assert.Equal(t, time.Duration(1), quantile(xs, 0))
	assert.Equal(t, time.Duration(0), quantile([]time.Duration(nil), 0.5))

	assert.Equal(t, 2.5, median([]float64{4, 1, 3, 2}))
	assert.Equal(t, 3.0, median([]float64{5, 3, 1}))
	assert.Equal(t, 0.0, median([]float64(nil)))
	in := []float64{3, 1, 2}
	median(in)
	assert.Equal(t, []float64{3, 1, 2}, in, "median must not sort its argument")
}

func TestLongestGap(t *testing.T) {
	ends := []time.Duration{10 * msec, 12 * msec, 40 * msec, 41 * msec, 90 * msec}
	for _, tc := range []struct {
		name string
		w    window
		want time.Duration
	}{
		{"inside", window{10 * msec, 41 * msec}, 28 * msec},
		{"from before the first", window{0, 20 * msec}, 10 * msec},
		{"clipped at the end", window{41 * msec, 60 * msec}, 19 * msec},
		{"clipped at both ends", window{20 * msec, 30 * msec}, 10 * msec},
		{"after the last", window{90 * msec, 200 * msec}, 110 * msec},
		{"whole", window{0, 100 * msec}, 49 * msec},
		{"empty", window{50 * msec, 50 * msec}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, longestGap(ends, tc.w))
		})
	}
	assert.Equal(t, 5*msec, longestGap(nil, window{0, 5 * msec}), "no response at all: the whole window")
}

// events builds ok events every step from..to answered by pid, with
// latency lat.
func okEvents(from, to, step, lat time.Duration, pid int32) []event {
	var ev []event
	for t := from; t < to; t += step {
		ev = append(ev, event{end: t, lat: lat, pid: pid})
	}
	return ev
}

func TestAnalyze(t *testing.T) {
	// 0-1s: pid 1 answers every ms in 2ms. Upgrade signal at 1s; pid 1
	// stops answering; 3 failures at 1.010s; pid 2 answers from 1.050s,
	// in 4ms. A second upgrade at 1.5s to pid 3, seamless. Load ends at 2s.
	var ev []event
	ev = append(ev, event{end: 100 * msec, kind: kindRefused}) // in the warm-up: counted, not in the baseline window
	ev = append(ev, okEvents(0, 1000*msec, msec, 2*msec, 1)...)
	ev = append(ev, event{end: 1010 * msec, kind: kindReset}, event{end: 1010 * msec, kind: kindEOF}, event{end: 1011 * msec, kind: kindEOF})
	ev = append(ev, okEvents(1050*msec, 1500*msec, msec, 4*msec, 2)...)
	ev = append(ev, okEvents(1500*msec, 2000*msec, msec, 4*msec, 3)...)
	sortEvents(ev)
	marks := []upgradeMark{
		{Signal: 1000 * msec, Ready: 1040 * msec, Gone: 1060 * msec, OldPID: 1, NewPID: 2},
		{Signal: 1500 * msec, Ready: 1520 * msec, Gone: 1530 * msec, OldPID: 2, NewPID: 3},
	}
	stalls := []window{{400 * msec, 600 * msec}, {1005 * msec, 1030 * msec}}
	m := analyze(ev, marks, stalls, 500*msec, 2000*msec)

	assert.Equal(t, int64(len(ev)), m.Requests)
	assert.Equal(t, int64(4), m.Failed)
	assert.Equal(t, int64(1), m.BaselineFailed)
	assert.Equal(t, [numKinds]int64{kindRefused: 1, kindReset: 1, kindEOF: 2}, m.Kinds)

	assert.Equal(t, int64(500), m.Baseline.OK)
	assert.InDelta(t, 1000, m.Baseline.PerSec, 0.001)
	assert.Equal(t, 2*msec, m.Baseline.P50)
	assert.Equal(t, 2*msec, m.Baseline.P99)
	assert.Equal(t, msec, m.Baseline.Gap)
	assert.Equal(t, 100*msec, m.Baseline.Stall, "clipped to the window")
	assert.Equal(t, 25*msec, m.During.Stall)

	assert.Equal(t, int64(950), m.During.OK)
	assert.Equal(t, int64(3), m.During.Failed)
	assert.Equal(t, 4*msec, m.During.P50)
	assert.Equal(t, 50*msec, m.During.Gap) // 999ms -> 1050ms, clipped at the signal: 1000 -> 1050

	require.Len(t, m.Upgrades, 2)
	u := m.Upgrades[0]
	assert.Equal(t, upgradeResult{OldPID: 1, NewPID: 2, Ready: 40 * msec, Gone: 60 * msec, FirstAnswer: 50 * msec,
		Gap: 50 * msec, Stall: 25 * msec, Failed: 3, Kinds: [numKinds]int64{kindReset: 1, kindEOF: 2}}, u)
	u = m.Upgrades[1]
	assert.Equal(t, upgradeResult{OldPID: 2, NewPID: 3, Ready: 20 * msec, Gone: 30 * msec, FirstAnswer: 0,
		Gap: msec}, u)
}

func TestAnalyzeNoAnswerNoUpgrades(t *testing.T) {
	ev := okEvents(0, 100*msec, msec, msec, 1)
	m := analyze(ev, []upgradeMark{{Signal: 50 * msec, OldPID: 1, NewPID: 9}}, nil, 0, 100*msec)
	require.Len(t, m.Upgrades, 1)
	assert.Equal(t, time.Duration(-1), m.Upgrades[0].FirstAnswer, "pid 9 never answered")
	assert.Zero(t, m.Upgrades[0].Ready, "not seen")

	m = analyze(ev, nil, nil, 10*msec, 100*msec)
	assert.Empty(t, m.Upgrades)
	assert.Equal(t, int64(90), m.Baseline.OK, "without upgrades the baseline runs to the end")
	assert.Zero(t, m.During.OK)
}

func TestLongestStall(t *testing.T) {
	stalls := []window{{10 * msec, 20 * msec}, {50 * msec, 80 * msec}}
	assert.Equal(t, 30*msec, longestStall(stalls, window{0, 100 * msec}))
	assert.Equal(t, 10*msec, longestStall(stalls, window{0, 60 * msec}), "clipped")
	assert.Equal(t, 5*msec, longestStall(stalls, window{15 * msec, 40 * msec}))
	assert.Zero(t, longestStall(stalls, window{20 * msec, 50 * msec}))
	assert.Zero(t, longestStall(nil, window{0, time.Second}))
}

func TestStallMonitorStops(t *testing.T) {
	s := startStallMonitor(time.Now())
	time.Sleep(20 * time.Millisecond)
	for _, w := range s.Stop() { // normally none; any must be well formed
		assert.Greater(t, w.to-w.from, stallThreshold)
	}
}

func TestTimeline(t *testing.T) {
	ev := []event{
		{end: 0}, {end: 9 * msec}, {end: 10 * msec},
		{end: 15 * msec, kind: kindRefused}, {end: 19 * msec, kind: kindReset},
		{end: 35 * msec},
		{end: 45 * msec}, // at the end of the load: outside
	}
	tl := newTimeline(ev, 35*msec+1)
	assert.Equal(t, []int64{2, 1, 0, 1}, tl.OK)
	assert.Equal(t, []int64{0, 1, 0, 0}, tl.Failed[kindRefused])
	assert.Equal(t, []int64{0, 1, 0, 0}, tl.Failed[kindReset])
	assert.Equal(t, int64(2), tl.failedAt(1))
	assert.Equal(t, int64(0), tl.failedAt(0))
}

func sortEvents(ev []event) {
	r := &recorder{clients: [][]event{ev}}
	copy(ev, r.events())
}

// TestAnalyzeDials: the connections opened between one upgrade signal and
// the next are counted for that upgrade, failed attempts' dials too.
func TestAnalyzeDials(t *testing.T) {
	ev := okEvents(0, 1000*msec, msec, msec, 1)
	ev = append(ev, event{end: 400 * msec, kind: kindOK, pid: 2, dialed: true},
		event{end: 410 * msec, kind: kindEOF, dialed: true}, event{end: 420 * msec, kind: kindOK, pid: 2, dialed: true},
		event{end: 700 * msec, kind: kindOK, pid: 3, dialed: true}, event{end: 100 * msec, kind: kindOK, pid: 1, dialed: true})
	sortEvents(ev)
	m := analyze(ev, []upgradeMark{{Signal: 300 * msec, OldPID: 1, NewPID: 2}, {Signal: 600 * msec, OldPID: 2, NewPID: 3}}, nil, 0, 1000*msec)
	require.Len(t, m.Upgrades, 2)
	assert.Equal(t, int64(3), m.Upgrades[0].Dials)
	assert.Equal(t, int64(1), m.Upgrades[1].Dials, "the dial before the first signal counts for none")
}
