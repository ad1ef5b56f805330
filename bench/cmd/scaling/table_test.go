package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestFmtDur(t *testing.T) {
	for _, tc := range []struct {
		in   time.Duration
		want string
	}{
		{0, "–"},
		{850 * time.Microsecond, "850µs"},
		{1234567 * time.Nanosecond, "1.23ms"},
		{12345 * time.Microsecond, "12.3ms"},
		{123456 * time.Microsecond, "123ms"},
		{1500 * time.Millisecond, "1500ms"},
	} {
		assert.Equal(t, tc.want, fmtDur(tc.in), "%d ns", int64(tc.in))
	}
}

func TestFmtRatio(t *testing.T) {
	assert.Equal(t, "–", fmtRatio(0))
	assert.Equal(t, "1.93×", fmtRatio(1.926))
	assert.Equal(t, "0.50×", fmtRatio(0.5))
	assert.Equal(t, "11.6×", fmtRatio(11.63))
}

func TestFmtRatios(t *testing.T) {
	a := Summary{N: 1, P50: ms(4), P90: ms(9)}
	b := Summary{N: 1, P50: ms(2), P90: ms(3)}
	assert.Equal(t, "2.00× / 3.00×", fmtRatios(a, b))
	assert.Equal(t, "–", fmtRatios(a, Summary{}))
}

func TestFmtPair(t *testing.T) {
	assert.Equal(t, "–", fmtPair(Summary{}))
	assert.Equal(t, "2.00ms / 3.00ms", fmtPair(Summary{N: 2, P50: ms(2), P90: ms(3)}))
}

func TestFmtBytes(t *testing.T) {
	assert.Equal(t, "0 KiB", fmtBytes(0))
	assert.Equal(t, "828 KiB", fmtBytes(828*1024))
	assert.Equal(t, "1.50 MiB", fmtBytes(3<<19))
	assert.Equal(t, "-2.00 MiB", fmtBytes(-2<<20))
	assert.Equal(t, "-4 KiB", fmtBytes(-4096))
}

func TestFmtRange(t *testing.T) {
	var r Range
	assert.Equal(t, "–", fmtRange(r))
	r.Add(7)
	assert.Equal(t, "7", fmtRange(r))
	r.Add(9)
	assert.Equal(t, "7–9", fmtRange(r))
}

func TestTableText(t *testing.T) {
	tb := &table{title: "T", header: []string{"name", "value"}, notes: []string{"a note"}}
	tb.add("a", "1")
	tb.add("longer", "12345")
	tb.add("µ", "–") // widths count runes, not bytes
	assert.Equal(t, "T\n"+
		"name    value\n"+
		"a           1\n"+
		"longer  12345\n"+
		"µ           –\n"+
		"  a note\n", tb.text())
}

func TestTableMarkdown(t *testing.T) {
	tb := &table{title: "T", header: []string{"name", "value"}, notes: []string{"a note"}}
	tb.add("a|b", "1")
	tb.add("short") // missing cells are empty
	assert.Equal(t, "**T**\n\n"+
		"| name | value |\n"+
		"| --- | ---: |\n"+
		"| a\\|b | 1 |\n"+
		"| short |  |\n"+
		"\n- a note\n", tb.markdown())
}
