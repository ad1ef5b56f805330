package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The re-executed processes report to the driver on standard output, one
// line each, written whole (shorter than PIPE_BUF, so a parent's and its
// child's lines never interleave):
//
//	parent ns=<Upgrade took> before=<fds> after=<fds> closed=<fds> start=<wall ns> end=<wall ns>
//	child pid=<pid> fds=<fds> main=<wall ns> adopted=<wall ns> returned=<wall ns>
//
// before counts the parent's descriptors before it listened, after those
// once Upgrade returned, closed those once it closed its listeners again;
// start and end are the wall clock at the call of Upgrade and its return.
// fds counts the child's descriptors once it is ready; main is the wall
// clock when its main function began, adopted when it had taken all its
// listeners, just before Ready, returned when its library's Ready had
// returned (after the parent's Upgrade, perhaps: what the library does
// after it says live). The wall clock is the one clock both
// processes share; it splits an upgrade into its phases to within a few
// microseconds.
const (
	lineParent = "parent"
	lineChild  = "child"
)

// parentReport is the parent's line.
type parentReport struct {
	took                  time.Duration
	before, after, closed int
	start, end            time.Time
}

// childReport is the child's line.
type childReport struct {
	pid, fds                int
	main, adopted, returned time.Time
}

func (r parentReport) String() string {
	return fmt.Sprintf("%s ns=%d before=%d after=%d closed=%d start=%d end=%d\n", lineParent,
		r.took.Nanoseconds(), r.before, r.after, r.closed, r.start.UnixNano(), r.end.UnixNano())
}

func (r childReport) String() string {
	return fmt.Sprintf("%s pid=%d fds=%d main=%d adopted=%d returned=%d\n", lineChild,
		r.pid, r.fds, r.main.UnixNano(), r.adopted.UnixNano(), r.returned.UnixNano())
}

// report is one line of the protocol, parsed.
type report struct {
	kind string
	vals map[string]int64
}

// parseReport reads one line of the protocol. Every field after the kind
// is key=integer.
func parseReport(line string) (report, error) {
	f := strings.Fields(line)
	if len(f) == 0 {
		return report{}, fmt.Errorf("empty report line")
	}
	r := report{kind: f[0], vals: make(map[string]int64, len(f)-1)}
	if r.kind != lineParent && r.kind != lineChild {
		return report{}, fmt.Errorf("report line %q: unknown kind %q", line, r.kind)
	}
	for _, kv := range f[1:] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return report{}, fmt.Errorf("report line %q: field %q is not key=value", line, kv)
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return report{}, fmt.Errorf("report line %q: field %q: %w", line, k, err)
		}
		r.vals[k] = n
	}
	return r, nil
}

// need returns the values of keys, or an error naming the first missing.
func (r report) need(keys ...string) ([]int64, error) {
	out := make([]int64, len(keys))
	for i, k := range keys {
		v, ok := r.vals[k]
		if !ok {
			return nil, fmt.Errorf("%s report lacks %q", r.kind, k)
		}
		out[i] = v
	}
	return out, nil
}

// parseLines reads the reports of one sample: the parent's, which must be
// there, and its child's, if it sent one.
func parseLines(lines []string) (p parentReport, c *childReport, err error) {
	var gotParent bool
	for _, l := range lines {
		r, err := parseReport(l)
		if err != nil {
			return p, c, err
		}
		switch r.kind {
		case lineParent:
			v, err := r.need("ns", "before", "after", "closed", "start", "end")
			if err != nil {
				return p, c, err
			}
			p = parentReport{took: time.Duration(v[0]), before: int(v[1]), after: int(v[2]), closed: int(v[3]),
				start: time.Unix(0, v[4]), end: time.Unix(0, v[5])}
			gotParent = true
		case lineChild:
			v, err := r.need("pid", "fds", "main", "adopted", "returned")
			if err != nil {
				return p, c, err
			}
			c = &childReport{pid: int(v[0]), fds: int(v[1]), main: time.Unix(0, v[2]), adopted: time.Unix(0, v[3]),
				returned: time.Unix(0, v[4])}
		}
	}
	if !gotParent {
		return p, c, fmt.Errorf("no report from the parent (got %q)", strings.Join(lines, " | "))
	}
	return p, c, nil
}

// phases splits an upgrade, by the wall clock, into the time until the
// child's main began (fork, exec, the runtime's start), the time the
// child took to adopt its listeners, and the rest (Ready's exchange until
// Upgrade returned); and, on the child's side alone, its call of Ready.
type phases struct {
	start, adopt, ready, readyCall time.Duration
}

func splitPhases(p parentReport, c childReport) phases {
	return phases{start: c.main.Sub(p.start), adopt: c.adopted.Sub(c.main), ready: p.end.Sub(c.adopted),
		readyCall: c.returned.Sub(c.adopted)}
}
