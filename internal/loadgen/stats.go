package loadgen

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Stats are the totals of a load, from [Run], [Load.Snapshot] or [Load.Stop].
//
// A request is counted once it ends: with a complete 2xx response (ok), or
// otherwise (failed). Requests still in flight when the load is stopped are
// abandoned and not counted at all.
type Stats struct {
	// Requests counts finished attempts, ok and failed.
	Requests int64

	// Failed counts attempts that did not end with a complete 2xx
	// response: the dial failed, the write failed, the response was cut
	// short, timed out or was malformed, or its status was not 2xx.
	Failed int64

	// Conns counts connections opened (successful dials). In [KeepAlive]
	// mode it stays near Clients unless the server closes connections.
	Conns int64

	// Retried counts ok and failed attempts that [Config.HTTP2]'s
	// transport sent more than once, because the server refused them
	// unprocessed (GOAWAY, REFUSED_STREAM) or reset them with
	// PROTOCOL_ERROR. Zero in HTTP/1.1 mode, which never retries.
	Retried int64

	// Bodies counts the bodies of 200 responses, byte for byte (a trailing
	// newline is kept). Bodies longer than 256 bytes are cut to 256 bytes
	// plus "…"; past 1024 distinct bodies per client, new ones are counted
	// under "(other)".
	Bodies map[string]int64

	// Errors counts failures by kind: "stage: reason", where stage is
	// dial, tls (the handshake), write or read, or with [Config.HTTP2] h2,
	// the exchange on a connection ("dial: connection refused", "read:
	// EOF", "read: unexpected EOF", "read: timeout", "h2: stream error
	// INTERNAL_ERROR", "h2: GOAWAY"), or "status 503", or
	// "malformed: what". "read: EOF" means the connection ended before
	// any byte of the response; "read: unexpected EOF" means it ended in
	// the middle of one. Kinds never contain addresses or ports.
	Errors map[string]int64

	// P50, P99 and Max are latencies of ok requests, from the start of the
	// attempt (including its dial, if it needed one) to the last byte of
	// the response. P50 and P99 are approximate (within about 3%, from a
	// log-scale histogram); Max is exact. All are zero if nothing succeeded.
	P50, P99, Max time.Duration

	// Elapsed is the time from the start of the load to the snapshot, or
	// to Stop.
	Elapsed time.Duration
}

// String summarizes s on one line, with error kinds in order.
func (s Stats) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "requests=%d failed=%d conns=%d p50=%v p99=%v max=%v elapsed=%v",
		s.Requests, s.Failed, s.Conns, s.P50, s.P99, s.Max, s.Elapsed.Round(time.Millisecond))
	if s.Retried > 0 {
		fmt.Fprintf(&b, " retried=%d", s.Retried)
	}
	kinds := make([]string, 0, len(s.Errors))
	for k := range s.Errors {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		fmt.Fprintf(&b, " [%s]=%d", k, s.Errors[k])
	}
	return b.String()
}

// maxBodies bounds the distinct bodies one client remembers.
const maxBodies = 1024

// tally is one client's counts. Its owner guards it with a mutex.
type tally struct {
	requests, failed, conns, retried int64
	bodies, errors                   map[string]int64
	hist                             histogram
}

func (t *tally) record(o outcome) {
	if o.dialed {
		t.conns++
	}
	if !o.attempted {
		return
	}
	t.requests++
	if o.retried {
		t.retried++
	}
	if o.kind != "" {
		t.failed++
		if t.errors == nil {
			t.errors = make(map[string]int64)
		}
		t.errors[o.kind]++
		return
	}
	t.hist.add(o.latency)
	if o.status != 200 {
		return
	}
	if t.bodies == nil {
		t.bodies = make(map[string]int64)
	}
	key := string(o.body)
	if o.size > int64(len(o.body)) {
		key += "…"
	}
	if _, seen := t.bodies[key]; !seen && len(t.bodies) >= maxBodies {
		key = "(other)"
	}
	t.bodies[key]++
}

// sum adds t into s and h.
func (t *tally) sum(s *Stats, h *histogram) {
	s.Requests += t.requests
	s.Failed += t.failed
	s.Conns += t.conns
	s.Retried += t.retried
	for k, v := range t.bodies {
		s.Bodies[k] += v
	}
	for k, v := range t.errors {
		s.Errors[k] += v
	}
	h.merge(&t.hist)
}
