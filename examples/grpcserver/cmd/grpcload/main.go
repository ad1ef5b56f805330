// Command grpcload drives load at grpcserver and counts what it sees: every
// RPC that does not end with status OK and the expected answer is a
// failure, counted by status code. At the end it prints a JSON summary on
// standard output, including which versions and PIDs answered:
//
//	grpcload -addr 127.0.0.1:50051 -clients 8 -fresh 8 -duration 10s
//
// It stops after -duration, after -n RPCs per client, on SIGTERM or
// SIGINT, or with -stdin when standard input reaches EOF (so a test or
// script that dies takes its load generator with it).
//
// -clients each hold one connection (a grpc.ClientConn) for the whole run,
// as a long-lived service client does: a draining server sends them GOAWAY
// and they reconnect. -fresh dial a new ClientConn for every RPC, as a
// command-line tool does: these land on whichever generation accepts.
//
// -method ticks and chat run streams instead, -streams of them on each
// client's connection (-fresh: a connection per stream), each opened again
// as soon as it ends, and count how the streams end (OK; GoingAway, the
// status Unavailable with which a draining grpcserver ends its streams;
// Stopped, by grpcload at the end of the run; or the status code of
// anything else, a failure), the messages received and those out of order
// or not as sent, and, for chat, the messages sent and not answered when a
// stream ended ("lost in flight", which a client must send again). Ticks
// streams last until the run ends; chat streams send -messages messages,
// one per -interval with at most -window unanswered, then close their side
// and end OK (-messages 0: until the run ends).
//
// The clients keep gRPC's defaults on purpose, as a user gets them. Among
// them: RPCs are fail-fast (not WaitForReady), so an RPC issued while a
// connection cannot be made fails at once with Unavailable; and grpc-go
// retries transparently, once, an RPC that never reached a server's
// handler — one sent on a connection that had just received GOAWAY, or
// whose stream the server refused. That retry is how gRPC is meant to
// cope with a draining server, and a retried RPC that then succeeds counts
// as OK here; no retry policy is configured beyond it.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/handoff-go/handoff/examples/grpcserver/echo"
)

// Failure kinds that are not gRPC status codes.
const (
	badAnswer  = "BadAnswer"  // status OK, but not the answer sent for, or no version/pid header
	notServing = "NotServing" // health says the server is not SERVING
)

// Summary is what grpcload prints.
type Summary struct {
	RPCs     int64            `json:"rpcs"`
	OK       int64            `json:"ok"`
	Failed   int64            `json:"failed"`
	ByCode   map[string]int64 `json:"failed_by_code"` // status code name, BadAnswer or NotServing
	Versions map[string]int64 `json:"versions"`       // OK answers by the server's version
	PIDs     map[string]int64 `json:"pids"`           // OK answers by the server's PID
	// Last is the version and PID of the last OK answer (or stream
	// message) received.
	Last struct {
		Version string `json:"version"`
		PID     int    `json:"pid"`
	} `json:"last"`
	// Streams is what -method ticks or chat saw (nil for the others, which
	// leave the fields above to unary RPCs).
	Streams *StreamSummary `json:"streams,omitempty"`
	Errors  []string       `json:"errors,omitempty"` // the first failures, in words
	Seconds float64        `json:"seconds"`
}

// maxErrors bounds Summary.Errors.
const maxErrors = 20

func main() {
	addr := flag.String("addr", "127.0.0.1:50051", "server address")
	clients := flag.Int("clients", 8, "clients holding one connection each for the whole run")
	fresh := flag.Int("fresh", 0, "clients dialing a new connection for every RPC")
	method := flag.String("method", "echo", "RPC to call: echo, health (grpc.health.v1.Health/Check), sleep, or the streams ticks or chat")
	sleep := flag.Duration("sleep", time.Second, "how long the server sleeps in each -method sleep RPC")
	streams := flag.Int("streams", 1, "streams on each client's connection (-method ticks or chat)")
	interval := flag.Duration("interval", 10*time.Millisecond, "ticks: the server's interval; chat: the pause between messages")
	messages := flag.Int("messages", 100, "chat: messages per stream, then close it (0: until the run ends)")
	window := flag.Int("window", 4, "chat: messages sent and not yet answered, at most")
	n := flag.Int("n", 0, "RPCs (or streams) per client, then stop (0: no limit)")
	duration := flag.Duration("duration", 0, "stop after this long (0: no limit)")
	stdin := flag.Bool("stdin", false, "stop when standard input reaches EOF")
	timeout := flag.Duration("timeout", 10*time.Second, "deadline of each RPC; chat: how long a stream may take to end once the run has")
	flag.Parse()

	var call func(ctx context.Context, cc *grpc.ClientConn, seq string) (metadata.MD, error)
	var stream *streamConfig
	switch *method {
	case "echo":
		call = callEcho
	case "health":
		call = callHealth
	case "sleep":
		call = func(ctx context.Context, cc *grpc.ClientConn, _ string) (metadata.MD, error) {
			return callSleep(ctx, cc, *sleep)
		}
	case "ticks", "chat":
		stream = &streamConfig{chat: *method == "chat", interval: *interval, messages: *messages, window: *window, timeout: *timeout}
	default:
		fmt.Fprintf(os.Stderr, "grpcload: unknown -method %q: use echo, health, sleep, ticks or chat\n", *method)
		os.Exit(2)
	}
	if *clients < 0 || *fresh < 0 || *clients+*fresh == 0 {
		fmt.Fprintln(os.Stderr, "grpcload: -clients and -fresh must not be negative, nor both zero")
		os.Exit(2)
	}
	if stream != nil && (*streams < 1 || *window < 1 || *messages < 0 || *interval <= 0) {
		fmt.Fprintln(os.Stderr, "grpcload: -streams and -window must be at least 1, -messages not negative, -interval positive")
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if *duration > 0 {
		ctx, stop = context.WithTimeout(ctx, *duration)
		defer stop()
	}
	if *stdin {
		ctx, stop = context.WithCancel(ctx)
		defer stop()
		go func() {
			io.Copy(io.Discard, os.Stdin)
			stop()
		}()
	}

	t := &tally{s: Summary{ByCode: map[string]int64{}, Versions: map[string]int64{}, PIDs: map[string]int64{}}}
	if stream != nil {
		t.s.Streams = &StreamSummary{Reopened: map[string]int64{}, Bounced: map[string]int64{}, SentAway: map[string]int64{}, Ends: map[string]int64{}, PIDs: map[string]int64{}}
	}
	start := time.Now()
	dial := func() *grpc.ClientConn {
		cc, err := grpc.NewClient("passthrough:///"+*addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			// NewClient fails only on a malformed target or option.
			fmt.Fprintln(os.Stderr, "grpcload:", err)
			os.Exit(2)
		}
		return cc
	}
	var wg sync.WaitGroup
	// run is one client: one RPC or stream after another, on shared, or
	// each on a connection of its own if shared is nil.
	run := func(name string, shared *grpc.ClientConn) {
		defer wg.Done()
		reopen := false // the server sent the stream before away
		for i := 0; (*n == 0 || i < *n) && ctx.Err() == nil; i++ {
			cc := shared
			if cc == nil {
				cc = dial()
			}
			tag := fmt.Sprintf("%s-%d", name, i)
			if stream != nil {
				r := runStream(ctx, cc, tag, *stream)
				t.recordStream(r, reopen)
				reopen = r.end == endGoingAway
				if failedEnd(r.end) {
					time.Sleep(10 * time.Millisecond) // no spinning against a server that is not there
				}
			} else {
				// Not ctx: an RPC under way when the run ends is finished,
				// not cancelled, which would count as a failure of our own
				// making.
				rctx, cancel := context.WithTimeout(context.Background(), *timeout)
				md, err := call(rctx, cc, tag)
				cancel()
				t.record(md, err)
			}
			if shared == nil {
				cc.Close()
			}
		}
	}
	// Stream clients run -streams streams at a time, on one connection.
	perClient := 1
	if stream != nil {
		perClient = *streams
	}
	for k := range *clients + *fresh {
		var cc *grpc.ClientConn
		if k < *clients {
			cc = dial()
			defer cc.Close()
		}
		for j := range perClient {
			name := fmt.Sprintf("c%d", k)
			if perClient > 1 {
				name += fmt.Sprintf(".%d", j)
			}
			wg.Add(1)
			go run(name, cc)
		}
	}
	wg.Wait()

	t.s.Seconds = time.Since(start).Seconds()
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(&t.s); err != nil {
		fmt.Fprintln(os.Stderr, "grpcload:", err)
		os.Exit(1)
	}
}

// callEcho sends seq to Echo and checks that seq comes back.
func callEcho(ctx context.Context, cc *grpc.ClientConn, seq string) (metadata.MD, error) {
	var md metadata.MD
	out := new(wrapperspb.StringValue)
	if err := cc.Invoke(ctx, echo.EchoMethod, wrapperspb.String(seq), out, grpc.Header(&md)); err != nil {
		return md, err
	}
	if out.GetValue() != seq {
		return md, &failure{badAnswer, fmt.Sprintf("sent %q, got %q back", seq, out.GetValue())}
	}
	return md, nil
}

// callHealth asks the health service about the server as a whole.
func callHealth(ctx context.Context, cc *grpc.ClientConn, _ string) (metadata.MD, error) {
	var md metadata.MD
	resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Header(&md))
	if err != nil {
		return md, err
	}
	if st := resp.GetStatus(); st != healthpb.HealthCheckResponse_SERVING {
		return md, &failure{notServing, "health status " + st.String()}
	}
	return md, nil
}

// callSleep asks the server to sleep d before answering.
func callSleep(ctx context.Context, cc *grpc.ClientConn, d time.Duration) (metadata.MD, error) {
	var md metadata.MD
	out := new(wrapperspb.StringValue)
	if err := cc.Invoke(ctx, echo.SleepMethod, durationpb.New(d), out, grpc.Header(&md)); err != nil {
		return md, err
	}
	if want := "slept " + d.String(); out.GetValue() != want {
		return md, &failure{badAnswer, fmt.Sprintf("want %q, got %q", want, out.GetValue())}
	}
	return md, nil
}

// tally adds up the outcomes of all clients.
type tally struct {
	mu sync.Mutex
	s  Summary
}

// record counts one RPC: err is its error, md its header metadata.
func (t *tally) record(md metadata.MD, err error) {
	version, pid := first(md, echo.VersionKey), first(md, echo.PIDKey)
	pidN, pidErr := strconv.Atoi(pid)
	if err == nil && (version == "" || pidErr != nil) {
		err = &failure{badAnswer, fmt.Sprintf("header metadata version=%q pid=%q", version, pid)}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.s.RPCs++
	if err == nil {
		t.s.OK++
		t.s.Versions[version]++
		t.s.PIDs[pid]++
		t.s.Last.Version, t.s.Last.PID = version, pidN
		return
	}
	t.s.Failed++
	t.s.ByCode[kind(err)]++
	t.note(fmt.Sprintf("%s (answered by version=%q pid=%q)", err, version, pid))
}

// note keeps msg among the first failures. t.mu must be held.
func (t *tally) note(msg string) {
	if len(t.s.Errors) < maxErrors {
		t.s.Errors = append(t.s.Errors, msg)
	}
}

// failure is an RPC that ended with status OK but not as it should.
type failure struct{ kind, msg string }

func (f *failure) Error() string { return f.kind + ": " + f.msg }

// kind names a failure: one of ours, or its status code (Unknown for an
// error that carries none).
func kind(err error) string {
	var f *failure
	if errors.As(err, &f) {
		return f.kind
	}
	return status.Code(err).String()
}

// first returns the first value of key in md, or "".
func first(md metadata.MD, key string) string {
	if v := md.Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}
