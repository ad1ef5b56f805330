package main

import (
	"bytes"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/handoff-go/handoff/internal/loadgen"
)

// kind is the category of an attempt's outcome.
type kind uint8

const (
	kindOK kind = iota
	kindRefused
	kindReset
	kindEOF
	kindTimeout
	kindStatus
	kindOther
	numKinds
)

// failureKinds are the failure categories, in report order.
var failureKinds = []kind{kindRefused, kindReset, kindEOF, kindTimeout, kindStatus, kindOther}

func (k kind) String() string {
	switch k {
	case kindOK:
		return "ok"
	case kindRefused:
		return "refused"
	case kindReset:
		return "reset"
	case kindEOF:
		return "EOF"
	case kindTimeout:
		return "timeout"
	case kindStatus:
		return "non-200"
	}
	return "other"
}

// classify maps a loadgen failure kind ("dial: connection refused",
// "read: EOF", "status 503", ...) to its category. A broken pipe is a
// write to a connection the server reset, so it counts as a reset;
// "unexpected EOF" (the connection ended in the middle of a response)
// counts as EOF.
func classify(s string) kind {
	switch {
	case s == "":
		return kindOK
	case strings.HasSuffix(s, "connection refused"):
		return kindRefused
	case strings.HasSuffix(s, "connection reset"), strings.HasSuffix(s, "broken pipe"):
		return kindReset
	case strings.HasSuffix(s, "EOF"):
		return kindEOF
	case strings.HasSuffix(s, "timeout"):
		return kindTimeout
	case strings.HasPrefix(s, "status "):
		return kindStatus
	}
	return kindOther
}

// event is one counted attempt, times relative to the start of the load.
type event struct {
	end    time.Duration // when the response (or the failure) came
	lat    time.Duration
	pid    int32 // the PID that answered, from the body; 0 if unknown
	kind   kind
	dialed bool // the attempt opened a new connection
}

// recorder keeps every attempt of a load, one slice per client, so that
// loadgen's clients never contend on a lock. Read events only after the
// load has stopped.
type recorder struct {
	base    time.Time
	clients [][]event
}

func newRecorder(base time.Time, clients int) *recorder {
	return &recorder{base: base, clients: make([][]event, clients)}
}

// on is the loadgen.Config.OnResult callback.
func (r *recorder) on(res loadgen.Result) {
	e := event{
		end:    res.Start.Sub(r.base) + res.Latency,
		lat:    res.Latency,
		kind:   classify(res.Kind),
		dialed: res.Dialed,
	}
	if e.kind == kindOK {
		e.pid = bodyPID(res.Body)
	}
	r.clients[res.Client] = append(r.clients[res.Client], e)
}

// events returns every event, ordered by end time.
func (r *recorder) events() []event {
	n := 0
	for _, c := range r.clients {
		n += len(c)
	}
	all := make([]event, 0, n)
	for _, c := range r.clients {
		all = append(all, c...)
	}
	slices.SortFunc(all, func(a, b event) int { return int(a.end - b.end) })
	return all
}

// bodyPID reads N from a body "version=v pid=N", or returns 0.
func bodyPID(b []byte) int32 {
	i := bytes.LastIndex(b, []byte("pid="))
	if i < 0 {
		return 0
	}
	n, err := strconv.ParseInt(string(b[i+4:]), 10, 32)
	if err != nil {
		return 0
	}
	return int32(n)
}

// upgradeMark is what the driver saw of one upgrade, relative to the start
// of the load. Ready and Gone are zero if they were not seen.
type upgradeMark struct {
	Signal time.Duration // the upgrade signal (stopstart: SIGTERM) was sent
	Ready  time.Duration // the pidfile named the new live process
	Gone   time.Duration // the old process had exited
	OldPID int
	NewPID int
	// CPU time: the new process's from its start until it was seen
	// ready, the old one's from the signal until it exited (what it
	// served meanwhile included); 0 where it could not be read.
	CPUNew, CPUOld time.Duration
}

// upgradeResult is one upgrade, measured. Durations count from the signal.
type upgradeResult struct {
	OldPID, NewPID int
	Ready          time.Duration // signal -> pidfile names the new PID
	Gone           time.Duration // signal -> old process exited
	FirstAnswer    time.Duration // signal -> first response from the new PID; -1: none
	Gap            time.Duration // longest time without any ok response, signal to next signal
	Stall          time.Duration // longest stall of the load generator itself, same window
	Failed         int64         // failures that ended between this signal and the next
	Dials          int64         // connections opened by attempts that ended in the same window
	Kinds          [numKinds]int64
	CPUNew, CPUOld time.Duration // see upgradeMark
}

// window is a span of the load, [from, to).
type window struct{ from, to time.Duration }

// windowStats are the ok responses of a window.
type windowStats struct {
	OK, Failed int64
	PerSec     float64 // ok responses per second
	P50, P99   time.Duration
	Gap        time.Duration // longest time without an ok response
	Stall      time.Duration // longest stall of the load generator itself
}

// trialMetrics are the measurements of one load against one mechanism.
type trialMetrics struct {
	Requests, Failed int64
	Kinds            [numKinds]int64
	BaselineFailed   int64 // failures before the first upgrade signal
	Baseline, During windowStats
	Upgrades         []upgradeResult
}

// analyze measures a load from its events (ordered by end), the upgrades
// the driver made, the stalls of the load generator, the end of the
// warm-up (the baseline window runs from there to the first signal) and
// the end of the load. The "during" window runs from the first signal to
// the end of the load.
func analyze(events []event, marks []upgradeMark, stalls []window, warmup, end time.Duration) trialMetrics {
	var m trialMetrics
	okEnds := make([]time.Duration, 0, len(events))
	for _, e := range events {
		m.Requests++
		if e.kind == kindOK {
			okEnds = append(okEnds, e.end)
			continue
		}
		m.Failed++
		m.Kinds[e.kind]++
	}
	first := end
	if len(marks) > 0 {
		first = marks[0].Signal
	}
	for _, e := range events {
		if e.kind != kindOK && e.end < first {
			m.BaselineFailed++
		}
	}
	m.Baseline = measureWindow(events, okEnds, stalls, window{warmup, first})
	m.During = measureWindow(events, okEnds, stalls, window{first, end})

	for i, mk := range marks {
		next := end
		if i+1 < len(marks) {
			next = marks[i+1].Signal
		}
		u := upgradeResult{OldPID: mk.OldPID, NewPID: mk.NewPID, FirstAnswer: -1, CPUNew: mk.CPUNew, CPUOld: mk.CPUOld}
		if mk.Ready > 0 {
			u.Ready = mk.Ready - mk.Signal
		}
		if mk.Gone > 0 {
			u.Gone = mk.Gone - mk.Signal
		}
		for _, e := range events[searchEnd(events, mk.Signal):] {
			if e.end >= next {
				break
			}
			if e.dialed {
				u.Dials++
			}
			if e.kind != kindOK {
				u.Failed++
				u.Kinds[e.kind]++
			} else if u.FirstAnswer < 0 && mk.NewPID != 0 && e.pid == int32(mk.NewPID) {
				u.FirstAnswer = e.end - mk.Signal
			}
		}
		u.Gap = longestGap(okEnds, window{mk.Signal, next})
		u.Stall = longestStall(stalls, window{mk.Signal, next})
		m.Upgrades = append(m.Upgrades, u)
	}
	return m
}

// searchEnd returns the index of the first event that ended at or after t.
func searchEnd(events []event, t time.Duration) int {
	i, _ := slices.BinarySearchFunc(events, t, func(e event, t time.Duration) int { return int(e.end - t) })
	return i
}

func measureWindow(events []event, okEnds []time.Duration, stalls []window, w window) windowStats {
	var s windowStats
	if w.to <= w.from {
		return s
	}
	var lats []time.Duration
	for _, e := range events[searchEnd(events, w.from):] {
		if e.end >= w.to {
			break
		}
		if e.kind != kindOK {
			s.Failed++
			continue
		}
		s.OK++
		lats = append(lats, e.lat)
	}
	slices.Sort(lats)
	s.P50, s.P99 = quantile(lats, 0.50), quantile(lats, 0.99)
	s.PerSec = float64(s.OK) / (w.to - w.from).Seconds()
	s.Gap = longestGap(okEnds, w)
	s.Stall = longestStall(stalls, w)
	return s
}

// quantile returns the nearest-rank q-quantile of sorted, or 0 if empty.
func quantile[T ~int64 | ~float64](sorted []T, q float64) T {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(q * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// median returns the median of xs (the mean of the middle two for an even
// count), or 0 if empty. xs is not modified.
func median[T ~int64 | ~float64](xs []T) T {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// longestGap returns the longest stretch of w in which no ok response
// came, given the sorted end times of ok responses. A stretch that began
// before w or ends after it counts only its part inside w.
func longestGap(okEnds []time.Duration, w window) time.Duration {
	if w.to <= w.from {
		return 0
	}
	i, _ := slices.BinarySearch(okEnds, w.from)
	prev := w.from
	var gap time.Duration
	for ; i < len(okEnds) && okEnds[i] < w.to; i++ {
		gap = max(gap, okEnds[i]-prev)
		prev = okEnds[i]
	}
	return max(gap, w.to-prev)
}

// bucketWidth is the resolution of timelines.
const bucketWidth = 10 * time.Millisecond

// timeline counts responses per bucketWidth: OK[i] and Failed[k][i] count
// those that ended in [i*bucketWidth, (i+1)*bucketWidth).
type timeline struct {
	OK     []int64
	Failed [numKinds][]int64
}

func newTimeline(events []event, end time.Duration) timeline {
	n := int((end + bucketWidth - 1) / bucketWidth)
	t := timeline{OK: make([]int64, n)}
	for k := range t.Failed {
		t.Failed[k] = make([]int64, n)
	}
	for _, e := range events {
		i := int(e.end / bucketWidth)
		if i < 0 || i >= n {
			continue
		}
		if e.kind == kindOK {
			t.OK[i]++
		} else {
			t.Failed[e.kind][i]++
		}
	}
	return t
}

// failedAt returns the failures of every kind in bucket i.
func (t *timeline) failedAt(i int) int64 {
	var n int64
	for k := range t.Failed {
		n += t.Failed[k][i]
	}
	return n
}
