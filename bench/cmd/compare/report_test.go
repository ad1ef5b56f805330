package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/handoff-go/handoff/internal/loadgen"
)

var testConfig = loadConfig{Mode: loadgen.KeepAlive, Clients: 32}

// fakeTrial is a trial whose upgrades each failed failed[i] requests
// (reset) and took ready/gone ms.
func fakeTrial(mech string, run int, ready, gone time.Duration, failed ...int64) *trial {
	m, _ := findMechanism(mech)
	t := &trial{Run: run, Config: testConfig, Mech: m, End: 3 * time.Second}
	t.Metrics.Baseline = windowStats{OK: 1000, PerSec: 1000, P50: msec, P99: 2 * msec, Gap: 3 * msec}
	t.Metrics.During = windowStats{OK: 2000, PerSec: 900, P50: msec, P99: 4 * msec, Gap: 20 * msec}
	for i, f := range failed {
		t.Marks = append(t.Marks, upgradeMark{Signal: time.Duration(i+1) * time.Second})
		u := upgradeResult{Ready: ready, Gone: gone, FirstAnswer: ready, Gap: 20 * msec, Failed: f}
		u.Kinds[kindReset] = f
		t.Metrics.Upgrades = append(t.Metrics.Upgrades, u)
		t.Metrics.Failed += f
		t.Metrics.Kinds[kindReset] += f
	}
	t.Metrics.Requests = 3000 + t.Metrics.Failed
	tl := make([]int64, 300)
	for i := range tl {
		tl[i] = 10
	}
	t.Timeline.OK = tl
	for k := range t.Timeline.Failed {
		t.Timeline.Failed[k] = make([]int64, 300)
	}
	t.Timeline.Failed[kindReset][100] = 4
	return t
}

func TestSummarize(t *testing.T) {
	trials := []*trial{
		fakeTrial("tableflip", 1, 10*msec, 100*msec, 10, 20),
		fakeTrial("tableflip", 2, 30*msec, 300*msec, 40, 0),
		fakeTrial("tableflip", 3, 20*msec, 200*msec, 2, 3),
	}
	s := summarize(trials)
	assert.Equal(t, "tableflip", s.Mechanism)
	assert.Equal(t, "keepalive-32", s.Config)
	assert.Equal(t, 3, s.Runs)
	assert.Equal(t, 6, s.Upgrades)
	assert.Equal(t, 30.0, s.FailedMedian) // runs: 30, 40, 5
	assert.Equal(t, int64(75), s.FailedTotal)
	assert.Equal(t, 12.5, s.FailedPerUpgrade)
	assert.Equal(t, int64(40), s.FailedMaxUpgrade)
	assert.Equal(t, 30.0, s.KindsMedian["reset"])
	assert.Equal(t, 0.0, s.KindsMedian["EOF"])
	assert.Equal(t, int64(75), s.KindsTotal["reset"])
	assert.Equal(t, 20.0, s.ReadyP50)
	assert.Equal(t, 30.0, s.ReadyMax)
	assert.Equal(t, 200.0, s.GoneP50)
	assert.Equal(t, 300.0, s.GoneMax)
	assert.Equal(t, 20.0, s.GapMax)
	assert.Equal(t, 3.0, s.GapBaseline)
	assert.Equal(t, 2.0, s.P99Baseline)
	assert.Equal(t, 4.0, s.P99During)
	assert.Equal(t, 900.0, s.PerSecDuring)
	assert.Empty(t, s.Errors)

	trials[1].Err = errors.New("upgrade 2: no new process\nlog...")
	s = summarize(trials)
	assert.Equal(t, []string{"run2-keepalive-32-tableflip: upgrade 2: no new process"}, s.Errors)
}

func TestSetRatios(t *testing.T) {
	sums := []summary{
		summarize([]*trial{fakeTrial("handoff", 1, 5*msec, 50*msec, 0, 0)}),
		summarize([]*trial{fakeTrial("tableflip", 1, 10*msec, 100*msec, 10, 20)}),
		summarize([]*trial{fakeTrial("stopstart", 1, 10*msec, 100*msec, 10, 20)}),
	}
	sums[2].Config = "other" // no tableflip there
	setRatios(sums)
	assert.Equal(t, map[string]float64{"failed": 0, "ready": 0.5, "gone": 0.5, "gap": 1, "p99": 1, "ok_per_sec": 1}, sums[0].VsReference)
	assert.Equal(t, 1.0, sums[1].VsReference["failed"])
	assert.Nil(t, sums[2].VsReference)

	// A reference with no failures has no failure ratio.
	sums = []summary{{Mechanism: "handoff", Config: "c", FailedMedian: 3}, {Mechanism: "tableflip", Config: "c"}}
	setRatios(sums)
	assert.NotContains(t, sums[0].VsReference, "failed")
	assert.Equal(t, "–", tablesRow(t, sums, "handoff")[1])
}

// tablesRow returns mechanism's row of the ratio table.
func tablesRow(t *testing.T, sums []summary, mech string) []string {
	_, _, r := tables(sums)
	for _, row := range r {
		if row[0] == mech {
			return row
		}
	}
	t.Fatalf("no row for %s", mech)
	return nil
}

func TestFormat(t *testing.T) {
	assert.Equal(t, "0", fmtMS(0))
	assert.Equal(t, "0.41", fmtMS(0.41))
	assert.Equal(t, "12.3", fmtMS(12.34))
	assert.Equal(t, "1520", fmtMS(1520.4))
	assert.Equal(t, "12", fmtCount(12))
	assert.Equal(t, "12.5", fmtCount(12.5))
	assert.Equal(t, 1.235, ms(1234567*time.Nanosecond))
}

func testReport(t *testing.T) *report {
	t.Helper()
	trials := []*trial{
		fakeTrial("handoff", 1, 5*msec, 50*msec, 0, 0),
		fakeTrial("tableflip", 1, 10*msec, 100*msec, 10, 20),
	}
	sums := []summary{summarize(trials[:1]), summarize(trials[1:])}
	setRatios(sums)
	rep := &report{
		Started: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Wall: "1m0s",
		Machine:   machine{CPUs: 2, Kernel: "6.1", GoVersion: "go1.24"},
		Settings:  settings{Args: []string{"-quick", "-out", "x"}, Runs: 1, Upgrades: 2, IntervalMS: 1000, WarmupMS: 500, BaselineMS: 1000},
		Summaries: sums,
		Files:     map[string]string{"results.json": "", "timeline.png": ""},
	}
	for _, tr := range trials {
		tr.LoadAvg = [2]float64{2.5, 3.5}
		rep.Trials = append(rep.Trials, newTrialRecord(tr, 500*msec))
	}
	return rep
}

func TestWriteText(t *testing.T) {
	var b bytes.Buffer
	writeText(&b, testReport(t), []loadConfig{testConfig, {Mode: loadgen.NewConn, Clients: 4}})
	out := b.String()
	assert.Contains(t, out, "== keep-alive, 32 clients (keepalive-32) ==")
	assert.NotContains(t, out, "newconn-4", "configurations without results are left out")
	lines := strings.Split(out, "\n")
	var handoff, tableflip []string
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) > 0 && f[0] == "handoff" && handoff == nil {
			handoff = f
		}
		if len(f) > 0 && f[0] == "tableflip" && tableflip == nil {
			tableflip = f
		}
	}
	// failed/run, per upgrade, max in one upgrade, refused, reset, ...
	assert.Equal(t, []string{"handoff", "0", "0.00", "0", "0", "0", "0", "0", "0", "0", "0", "in", "2", "upgrades", "0.0"}, handoff)
	assert.Equal(t, []string{"tableflip", "30", "15.00", "20", "0", "30", "0", "0", "0", "0", "30", "in", "2", "upgrades", "0.0"}, tableflip)
	assert.Contains(t, out, "5.00 / 5.00")        // handoff ready p50 / max
	assert.Contains(t, out, "1.00 → 1.00")        // p50 base -> during
	assert.Contains(t, out, "1000 → 900")         // ok/s
	assert.Contains(t, out, "20.0 / 20.0 (3.00)") // gap
}

func TestWriteMarkdownAndJSON(t *testing.T) {
	rep := testReport(t)
	var b bytes.Buffer
	writeMarkdown(&b, rep, []loadConfig{testConfig})
	md := b.String()
	assert.Contains(t, md, "Command: `go run ./cmd/compare -quick -out x`")
	assert.Contains(t, md, "## keep-alive, 32 clients (`keepalive-32`)")
	assert.Contains(t, md, "| mechanism | failed/run |")
	assert.Contains(t, md, "|---|---|")
	assert.Contains(t, md, "| handoff | 0 | 0.00 |")
	assert.Contains(t, md, "load average at the trials' starts and ends: 2.5 to 3.5")
	assert.Contains(t, md, "![timeline](timeline.png)")

	path := filepath.Join(t.TempDir(), "r.json")
	require.NoError(t, writeJSON(path, rep))
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	var back map[string]any
	require.NoError(t, json.Unmarshal(raw, &back))
	trials := back["trials"].([]any)
	require.Len(t, trials, 2)
	up := trials[1].(map[string]any)["upgrades"].([]any)[0].(map[string]any)
	assert.Equal(t, 10.0, up["new_pid_answers_ms"])
	assert.Equal(t, 10.0, up["failed"])
	assert.Equal(t, map[string]any{"reset": 10.0}, up["failed_by_kind"])
}

func TestWriteTimelines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.png")
	grid := [][]*trial{
		{fakeTrial("handoff", 1, 5*msec, 50*msec, 0, 0), nil},
		{fakeTrial("stopstart", 1, 5*msec, 50*msec, 4, 4), fakeTrial("tableflip", 1, 5*msec, 50*msec, 1)},
	}
	require.NoError(t, writeTimelines(path, grid))
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	img, err := png.Decode(f)
	require.NoError(t, err)
	b := img.Bounds()
	assert.InDelta(t, float64(2*panelWidth/72*96), b.Dx(), 1, "two panels wide at 96 dpi")
	assert.InDelta(t, float64(2*panelHeight/72*96), b.Dy(), 1)

	// The panels are drawn: mostly white, with the three series' colours
	// (anti-aliased, so classified by which channel dominates).
	var white, ok, fail, marker int
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			r, g, bl = r>>8, g>>8, bl>>8
			switch {
			case r > 245 && g > 245 && bl > 245:
				white++
			case bl > r+40 && bl > g: // okColor
				ok++
			case r > g+60 && r > bl+60: // failColor
				fail++
			case max(r, g, bl)-min(r, g, bl) < 10 && r > 60 && r < 200: // markerColor
				marker++
			}
		}
	}
	total := b.Dx() * b.Dy()
	assert.Greater(t, white, total/2, "background")
	assert.Greater(t, ok, 500, "the ok series")
	assert.Greater(t, fail, 20, "the failure spikes")
	assert.Greater(t, marker, 100, "the upgrade markers")
}
