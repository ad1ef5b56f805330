// Package loadgen is an honest HTTP/1.1 load generator: it counts every
// request that does not get a complete 2xx response, so that a test can
// show a server lost nothing while it was being upgraded.
//
// # Why not net/http
//
// Go's [net/http] client retries an idempotent request that fails on a
// reused connection, and the retry usually succeeds: exactly the failure a
// hand-over must not cause (an idle keep-alive connection closed under the
// client) would disappear from the count. loadgen therefore writes requests
// and parses responses itself, over a plain [net.Conn], and never retries.
//
// The one exception is [Config.HTTP2], which speaks HTTP/2 through
// net/http's transport, a connection per client. That transport sends a
// request again only when the server refused it unprocessed (above a
// GOAWAY's last stream, or REFUSED_STREAM), which RFC 9113 section 8.7 makes
// safe; such requests are counted in [Stats.Retried], and any other error
// fails the attempt.
//
// # What is counted
//
// Each client sends
//
//	GET <Path> HTTP/1.1
//	Host: <Addr>               ("localhost" for a unix socket)
//	User-Agent: handoff-loadgen
//	Connection: close          (NewConn mode only)
//
// and reads the response: status line, headers, and a body framed by
// Content-Length or Transfer-Encoding: chunked (interim 1xx responses are
// skipped; 204 and 304 have no body). An attempt is ok if it ends with a
// complete 2xx response. Anything else is a failure, recorded in
// [Stats.Failed] and by kind in [Stats.Errors]:
//
//   - the dial fails ("dial: connection refused");
//   - the write fails ("write: broken pipe");
//   - the connection ends before any byte of the response ("read: EOF",
//     "read: connection reset") or in the middle of it
//     ("read: unexpected EOF");
//   - [Config.Timeout] runs out ("read: timeout");
//   - the response cannot be parsed ("malformed: status line"), including a
//     2xx response with neither Content-Length nor chunking, whose
//     completeness cannot be checked;
//   - the status is not 2xx ("status 503").
//
// There is no exception for a reused keep-alive connection that the server
// closed while it was idle: such a request was sent and not answered, and
// a server that hands over without loss must not do that. The client does
// reconnect afterwards, and after any response that says
// "Connection: close", which by itself is not a failure.
//
// Only the end of the load is forgiven: requests in flight when [Run]'s
// context ends or [Load.Stop] is called are abandoned, whatever their
// outcome, and not counted.
//
// # Latency
//
// [Stats.P50] and [Stats.P99] come from a fixed log-scale histogram per
// client (16 buckets per power of two, under 8 KiB), so memory does not
// grow with the length of a run and the percentiles are approximate, within
// about 3%. [Stats.Max] is exact. Only ok requests contribute.
//
// # Use
//
// [Run] drives load until its context is done and returns the totals:
//
//	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
//	defer cancel()
//	st, err := loadgen.Run(ctx, loadgen.Config{Addr: "127.0.0.1:8080", Mode: loadgen.KeepAlive})
//
// For live progress, [Start] returns a [Load]; [Load.Snapshot] reads the
// totals so far and [Load.Stop] ends the load and returns the final ones.
// A Load's methods are safe for concurrent use; Stop may be called twice.
// Clients never back off after a failure: against a server that refuses
// connections they fail as fast as the kernel answers. Use
// [Config.Interval] to pace them.
//
// To see more than totals — a timeline, latencies in a window of time,
// which process answered when — set [Config.OnResult]: it is called with
// each counted attempt as it ends ([Result]: client, start, latency,
// failure kind, status, body).
package loadgen
