package main

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var (
	t0      = time.Unix(1700000000, 0)
	parentR = parentReport{took: 9 * time.Millisecond, before: 7, after: 1009, closed: 9,
		start: t0, end: t0.Add(9 * time.Millisecond)}
	childR = childReport{pid: 77, fds: 1006, main: t0.Add(3 * time.Millisecond), adopted: t0.Add(7 * time.Millisecond),
		returned: t0.Add(10 * time.Millisecond)}
)

func TestReportRoundTrip(t *testing.T) {
	p, c, err := parseLines([]string{childR.String(), strings.TrimSuffix(parentR.String(), "\n")})
	require.NoError(t, err)
	require.NotNil(t, c)
	assert.True(t, p.start.Equal(parentR.start) && p.end.Equal(parentR.end))
	p.start, p.end = parentR.start, parentR.end
	assert.Equal(t, parentR, p)
	assert.True(t, c.main.Equal(childR.main) && c.adopted.Equal(childR.adopted) && c.returned.Equal(childR.returned))
	assert.Equal(t, 77, c.pid)
	assert.Equal(t, 1006, c.fds)
}

func TestParseLinesParentOnly(t *testing.T) {
	p, c, err := parseLines([]string{parentR.String()})
	require.NoError(t, err)
	assert.Nil(t, c)
	assert.Equal(t, 9*time.Millisecond, p.took)
}

func TestParseLinesErrors(t *testing.T) {
	for name, lines := range map[string][]string{
		"nothing":        nil,
		"child only":     {childR.String()},
		"parent lacks":   {"parent ns=1 before=2"},
		"child lacks":    {parentR.String(), "child pid=1"},
		"garbage":        {parentR.String(), "panic: oops"},
		"not key=value":  {"parent ns"},
		"empty key":      {"parent =5"},
		"not a number":   {"parent ns=abc"},
		"not an integer": {"child pid=1 fds=1.5"},
		"blank":          {"   "},
	} {
		_, _, err := parseLines(lines)
		assert.Error(t, err, name)
	}
}

func TestSplitPhases(t *testing.T) {
	assert.Equal(t, phases{start: 3 * time.Millisecond, adopt: 4 * time.Millisecond, ready: 2 * time.Millisecond, readyCall: 3 * time.Millisecond},
		splitPhases(parentR, childR))
}
