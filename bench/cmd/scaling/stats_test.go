package main

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

// seq returns 1ms..n ms in a scrambled order.
func seq(n int) []time.Duration {
	ds := make([]time.Duration, n)
	for i := range ds {
		ds[i] = ms((i*7)%n + 1)
	}
	return ds
}

func TestSummarize(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []time.Duration
		want Summary
	}{
		{"empty", nil, Summary{}},
		{"one", []time.Duration{ms(5)}, Summary{N: 1, Min: ms(5), P50: ms(5), P90: ms(5), Max: ms(5)}},
		{"two", []time.Duration{ms(9), ms(1)}, Summary{N: 2, Min: ms(1), P50: ms(1), P90: ms(9), Max: ms(9)}},
		// Nearest rank: p50 of 10 is the 5th, p90 the 9th.
		{"ten", seq(10), Summary{N: 10, Min: ms(1), P50: ms(5), P90: ms(9), Max: ms(10)}},
		// p50 of 200 is the 100th smallest, p90 the 180th.
		{"two hundred", seq(200), Summary{N: 200, Min: ms(1), P50: ms(100), P90: ms(180), Max: ms(200)}},
		{"odd", seq(11), Summary{N: 11, Min: ms(1), P50: ms(6), P90: ms(10), Max: ms(11)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, Summarize(tc.in))
		})
	}
}

func TestSummarizeLeavesInputAlone(t *testing.T) {
	in := []time.Duration{ms(3), ms(1), ms(2)}
	Summarize(in)
	assert.Equal(t, []time.Duration{ms(3), ms(1), ms(2)}, in)
}

func TestPercentileBounds(t *testing.T) {
	s := []time.Duration{ms(1), ms(2), ms(3)}
	assert.Equal(t, ms(1), percentile(s, 0.001))
	assert.Equal(t, ms(3), percentile(s, 100))
	assert.Equal(t, ms(2), percentile(s, 50))
}

func TestRatio(t *testing.T) {
	assert.Equal(t, 2.0, ratio(ms(4), ms(2)))
	assert.Equal(t, 0.0, ratio(ms(4), 0))
}

func TestRange(t *testing.T) {
	var r Range
	assert.True(t, r.Empty())
	for _, v := range []int{5, 3, 9, 4} {
		r.Add(v)
	}
	assert.False(t, r.Empty())
	assert.Equal(t, 3, r.Min)
	assert.Equal(t, 9, r.Max)

	b, err := json.Marshal(struct{ A, B Range }{A: r})
	require.NoError(t, err)
	assert.JSONEq(t, `{"A":{"min":3,"max":9},"B":null}`, string(b))
}

func TestMedianMemory(t *testing.T) {
	assert.Equal(t, Memory{}, medianMemory(nil))
	assert.Equal(t, Memory{RSS: 2, HWM: 20}, medianMemory([]Memory{{RSS: 3, HWM: 20}, {RSS: 1, HWM: 30}, {RSS: 2, HWM: 10}}))
	// An even count takes the lower middle.
	assert.Equal(t, Memory{RSS: 1, HWM: 1}, medianMemory([]Memory{{RSS: 2, HWM: 2}, {RSS: 1, HWM: 1}}))
}

func TestSummarizePhases(t *testing.T) {
	p := summarizePhases([]phases{{ms(1), ms(10), ms(100), ms(4)}, {ms(3), ms(30), ms(300), ms(6)}, {ms(2), ms(20), ms(200), ms(5)}})
	assert.Equal(t, ms(2), p.Start.P50)
	assert.Equal(t, ms(20), p.Adopt.P50)
	assert.Equal(t, ms(300), p.Ready.P90)
	assert.Equal(t, 3, p.Ready.N)
	assert.Equal(t, ms(5), p.ReadyCall.P50)
}
