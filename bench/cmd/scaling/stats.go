package main

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// Summary describes a series of durations. Percentiles are by nearest
// rank: P50 of 200 samples is the 100th smallest, P90 the 180th.
type Summary struct {
	N   int           `json:"n"`
	Min time.Duration `json:"min_ns"`
	P50 time.Duration `json:"p50_ns"`
	P90 time.Duration `json:"p90_ns"`
	Max time.Duration `json:"max_ns"`
}

// Summarize returns the summary of ds; ds is not modified. The zero
// Summary stands for no samples.
func Summarize(ds []time.Duration) Summary {
	if len(ds) == 0 {
		return Summary{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return Summary{
		N:   len(s),
		Min: s[0],
		P50: percentile(s, 50),
		P90: percentile(s, 90),
		Max: s[len(s)-1],
	}
}

// percentile returns the p-th percentile (0 < p <= 100) of sorted by the
// nearest-rank method: the smallest sample with at least p% of the
// samples at or below it. sorted must not be empty.
func percentile(sorted []time.Duration, p float64) time.Duration {
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = max(1, min(rank, len(sorted)))
	return sorted[rank-1]
}

// ratio returns a/b, or 0 when b is zero (nothing to compare with).
func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// Range is the smallest and largest of a series of counts.
type Range struct {
	Min int `json:"min"`
	Max int `json:"max"`
	set bool
}

// Add widens r to include v.
func (r *Range) Add(v int) {
	if !r.set {
		r.Min, r.Max, r.set = v, v, true
		return
	}
	r.Min, r.Max = min(r.Min, v), max(r.Max, v)
}

// Empty reports whether nothing was added.
func (r Range) Empty() bool { return !r.set }

// medianMemory returns the medians of RSS and HWM, each on its own.
func medianMemory(ms []Memory) Memory {
	med := func(get func(Memory) int64) int64 {
		v := make([]int64, len(ms))
		for i, m := range ms {
			v[i] = get(m)
		}
		slices.Sort(v)
		return v[(len(v)-1)/2]
	}
	if len(ms) == 0 {
		return Memory{}
	}
	return Memory{RSS: med(func(m Memory) int64 { return m.RSS }), HWM: med(func(m Memory) int64 { return m.HWM })}
}

// MarshalJSON writes an empty Range as null.
func (r Range) MarshalJSON() ([]byte, error) {
	if r.Empty() {
		return []byte("null"), nil
	}
	return fmt.Appendf(nil, `{"min":%d,"max":%d}`, r.Min, r.Max), nil
}

// summarizePhases summarizes each phase on its own.
func summarizePhases(ps []phases) *Phases {
	var start, adopt, ready, call []time.Duration
	for _, p := range ps {
		start, adopt, ready = append(start, p.start), append(adopt, p.adopt), append(ready, p.ready)
		call = append(call, p.readyCall)
	}
	return &Phases{Start: Summarize(start), Adopt: Summarize(adopt), Ready: Summarize(ready), ReadyCall: Summarize(call)}
}
