package main

import (
	"fmt"
	"strings"
	"time"
)

// table is a titled grid of cells, rendered as aligned text for the
// terminal or as Markdown.
type table struct {
	title  string
	header []string
	rows   [][]string
	notes  []string // printed under the table
}

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

// widths returns the widest cell of each column, in runes.
func (t *table) widths() []int {
	w := make([]int, len(t.header))
	for _, row := range append([][]string{t.header}, t.rows...) {
		for i, c := range row {
			if i < len(w) {
				w[i] = max(w[i], len([]rune(c)))
			}
		}
	}
	return w
}

// text renders t for a terminal: the first column left-aligned, the
// others right-aligned, two spaces between columns.
func (t *table) text() string {
	var b strings.Builder
	b.WriteString(t.title + "\n")
	w := t.widths()
	line := func(cells []string) {
		for i := range w {
			c := ""
			if i < len(cells) {
				c = cells[i]
			}
			pad := strings.Repeat(" ", w[i]-len([]rune(c)))
			switch {
			case i == 0:
				b.WriteString(c + pad)
			default:
				b.WriteString("  " + pad + c)
			}
		}
		b.WriteString("\n")
	}
	line(t.header)
	for _, row := range t.rows {
		line(row)
	}
	for _, n := range t.notes {
		b.WriteString("  " + n + "\n")
	}
	return b.String()
}

// markdown renders t as a Markdown table under a bold title.
func (t *table) markdown() string {
	var b strings.Builder
	b.WriteString("**" + t.title + "**\n\n")
	row := func(cells []string) {
		b.WriteString("|")
		for i := range t.header {
			c := ""
			if i < len(cells) {
				c = strings.ReplaceAll(cells[i], "|", `\|`)
			}
			b.WriteString(" " + c + " |")
		}
		b.WriteString("\n")
	}
	row(t.header)
	b.WriteString("|")
	for i := range t.header {
		if i == 0 {
			b.WriteString(" --- |")
		} else {
			b.WriteString(" ---: |")
		}
	}
	b.WriteString("\n")
	for _, r := range t.rows {
		row(r)
	}
	if len(t.notes) > 0 {
		b.WriteString("\n")
		for _, n := range t.notes {
			b.WriteString("- " + n + "\n")
		}
	}
	return b.String()
}

// fmtDur formats a latency with three significant digits or so:
// "850µs", "1.23ms", "12.3ms", "123ms". Zero is "–" (not measured).
func fmtDur(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	switch {
	case d == 0:
		return "–"
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Round(time.Microsecond)/time.Microsecond)
	case ms < 10:
		return fmt.Sprintf("%.2fms", ms)
	case ms < 100:
		return fmt.Sprintf("%.1fms", ms)
	default:
		return fmt.Sprintf("%.0fms", ms)
	}
}

// fmtPair formats the p50 and p90 of s as "p50 / p90".
func fmtPair(s Summary) string {
	if s.N == 0 {
		return "–"
	}
	return fmtDur(s.P50) + " / " + fmtDur(s.P90)
}

// fmtRatio formats a ratio as "1.93×"; 0 (nothing to compare) is "–".
func fmtRatio(r float64) string {
	switch {
	case r == 0:
		return "–"
	case r >= 10:
		return fmt.Sprintf("%.1f×", r)
	default:
		return fmt.Sprintf("%.2f×", r)
	}
}

// fmtRatios formats the ratios of a's p50 and p90 to b's.
func fmtRatios(a, b Summary) string {
	if a.N == 0 || b.N == 0 {
		return "–"
	}
	return fmtRatio(ratio(a.P50, b.P50)) + " / " + fmtRatio(ratio(a.P90, b.P90))
}

// fmtBytes formats a size in MiB, or KiB below one MiB; a negative size
// (a difference) keeps its sign.
func fmtBytes(n int64) string {
	sign := ""
	if n < 0 {
		sign, n = "-", -n
	}
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%s%.2f MiB", sign, float64(n)/(1<<20))
	default:
		return fmt.Sprintf("%s%d KiB", sign, (n+512)>>10)
	}
}

// fmtRange formats a range of counts as "7" or "7–9"; empty is "–".
func fmtRange(r Range) string {
	switch {
	case r.Empty():
		return "–"
	case r.Min == r.Max:
		return fmt.Sprint(r.Min)
	default:
		return fmt.Sprintf("%d–%d", r.Min, r.Max)
	}
}
