package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/handoff-go/handoff/examples/grpcserver/echo"
)

// How a stream ended, besides the status code of anything else.
const (
	endOK        = "OK"        // the server ended it with status OK
	endGoingAway = "GoingAway" // Unavailable, echo.GoingAway: the server drained
	endStopped   = "Stopped"   // cancelled by grpcload, the run being over
)

// StreamSummary is what -method ticks and chat saw.
type StreamSummary struct {
	Opened int64 `json:"opened"` // streams opened
	// Reopened counts the streams opened right after the server had sent
	// the stream before away (GoingAway), by the PID that took them: the
	// new generation's, or an old one's that sent it away again at once.
	Reopened map[string]int64 `json:"reopened"`
	// Bounced counts, of those, the streams that were sent away again
	// before their first message, by PID: they reached the draining
	// generation again, over a connection that gRPC had not yet told to go
	// away (GOAWAY).
	Bounced map[string]int64 `json:"bounced"`
	// SentAway counts the streams a generation answered on and then sent
	// away (GoingAway), by its PID: each is opened again, and reaches a
	// newer generation unless the old one bounces it first.
	SentAway map[string]int64 `json:"sent_away"`
	// Ends counts streams by how they ended: OK, GoingAway, Stopped, or the
	// status code of anything else (Unavailable for a broken connection,
	// Canceled not of our making, Internal, ...).
	Ends     map[string]int64 `json:"ends"`
	Failed   int64            `json:"failed"`   // streams that ended neither OK, GoingAway nor Stopped
	Messages int64            `json:"messages"` // messages received
	PIDs     map[string]int64 `json:"pids"`     // messages received, by the server's PID
	// Mismatched counts messages out of order, not answering what was
	// sent, or naming another process than the stream's header metadata;
	// and chat messages left unanswered by a stream that ended OK.
	Mismatched int64 `json:"mismatched"`
	// LostInFlight counts chat messages sent and not answered when their
	// stream ended otherwise than OK: a client must send them again.
	LostInFlight int64 `json:"lost_in_flight"`
}

// streamConfig is how the streams of -method ticks and chat run.
type streamConfig struct {
	chat     bool
	interval time.Duration // ticks: the server's interval; chat: between messages sent
	messages int           // chat: messages per stream, then CloseSend (0: until the run ends)
	window   int           // chat: messages sent and not yet answered, at most
	timeout  time.Duration // how long a chat stream may take to end after the run
}

// streamResult is what one stream saw.
type streamResult struct {
	opened     bool
	end        string
	err        error // the status it ended with; nil for OK
	version    string
	pid        string
	messages   int64
	mismatched int64
	lost       int64
	problems   []string // the first mismatches, in words
}

// mismatch counts a message that was not as it should be.
func (r *streamResult) mismatch(format string, args ...any) {
	r.mismatched++
	if len(r.problems) < maxErrors {
		r.problems = append(r.problems, fmt.Sprintf(format, args...))
	}
}

// received counts a message; it returns the "version=V pid=P" with which
// the stream's messages begin, from its header metadata.
func (r *streamResult) received(s grpc.ClientStream) string {
	r.messages++
	md, _ := s.Header() // at hand: a message has come
	r.version, r.pid = first(md, echo.VersionKey), first(md, echo.PIDKey)
	return "version=" + r.version + " pid=" + r.pid
}

// ended records how the stream ended with err, the error of its last
// RecvMsg; ctx is the stream's context, which grpcload cancels.
func (r *streamResult) ended(ctx context.Context, s grpc.ClientStream, err error) {
	if r.pid == "" && s != nil {
		// A stream sent away before any message still says who did it.
		if md, herr := s.Header(); herr == nil {
			r.version, r.pid = first(md, echo.VersionKey), first(md, echo.PIDKey)
		}
	}
	st := status.Convert(err)
	switch {
	case errors.Is(err, io.EOF):
		r.end = endOK
		return
	case st.Code() == codes.Unavailable && st.Message() == echo.GoingAway:
		r.end = endGoingAway
	case st.Code() == codes.Canceled && ctx.Err() != nil:
		r.end = endStopped
	default:
		r.end = st.Code().String()
	}
	r.err = err
}

// runStream opens one stream on cc, runs it until it ends, and says what
// it saw. The stream ends when the server ends it, or when run ends:
// grpcload cancels a Ticks stream then, and closes its side of a Chat.
func runStream(run context.Context, cc *grpc.ClientConn, tag string, cfg streamConfig) streamResult {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if cfg.chat {
		// Answers to what was sent still come after the run; not forever.
		stop := context.AfterFunc(run, func() { time.AfterFunc(cfg.timeout, cancel) })
		defer stop()
		return runChat(ctx, cancel, run, cc, tag, cfg)
	}
	stop := context.AfterFunc(run, cancel)
	defer stop()
	return runTicks(ctx, cc, cfg.interval)
}

// runTicks checks that ticks come numbered 1, 2, 3, ... from the process
// the header names.
func runTicks(ctx context.Context, cc *grpc.ClientConn, interval time.Duration) (r streamResult) {
	s, err := cc.NewStream(ctx, &echo.TicksDesc, echo.TicksMethod)
	if err != nil {
		r.ended(ctx, nil, err)
		return r
	}
	r.opened = true
	// An error of SendMsg or CloseSend means the stream has ended; RecvMsg
	// says how.
	if s.SendMsg(durationpb.New(interval)) == nil {
		s.CloseSend()
	}
	for seq := 1; ; seq++ {
		m := new(wrapperspb.StringValue)
		if err := s.RecvMsg(m); err != nil {
			r.ended(ctx, s, err)
			return r
		}
		prefix := r.received(s) + " seq="
		got, err := strconv.Atoi(strings.TrimPrefix(m.GetValue(), prefix))
		if !strings.HasPrefix(m.GetValue(), prefix) || err != nil || got != seq {
			r.mismatch("tick %d: got %q, want %q%d", seq, m.GetValue(), prefix, seq)
			if err == nil {
				seq = got // count from there
			}
		}
	}
}

// runChat sends a message every interval, at most cfg.window unanswered,
// and checks that the answers come in order from the process the header
// names. cancel ends ctx, the stream's context.
func runChat(ctx context.Context, cancel context.CancelFunc, run context.Context, cc *grpc.ClientConn, tag string, cfg streamConfig) (r streamResult) {
	s, err := cc.NewStream(ctx, &echo.ChatDesc, echo.ChatMethod)
	if err != nil {
		r.ended(ctx, nil, err)
		return r
	}
	r.opened = true
	sent := make(chan string, cfg.window) // sent and not yet answered, in order
	unsent := make(chan bool, 1)          // whether the sender's last message failed to go out
	go func() { unsent <- sendChat(ctx, run, s, tag, sent, cfg) }()
	for {
		m := new(wrapperspb.StringValue)
		if err := s.RecvMsg(m); err != nil {
			r.ended(ctx, s, err)
			break
		}
		id := r.received(s)
		select {
		case want := <-sent:
			if want = id + " " + want; m.GetValue() != want {
				r.mismatch("chat: got %q, want %q", m.GetValue(), want)
			}
		default:
			r.mismatch("chat: got %q, an answer to nothing sent", m.GetValue())
		}
	}
	cancel() // the stream is over: stop the sender
	failed := <-unsent
	left := int64(len(sent))
	if failed {
		left--
	}
	switch {
	case left == 0:
	case r.end == endOK:
		r.mismatch("chat: the stream ended OK with %d messages unanswered", left)
	default:
		r.lost = left
	}
	return r
}

// sendChat sends tag-0, tag-1, ... on s, each first put in sent, until
// cfg.messages are sent, run ends or ctx ends; then it closes its side.
// It reports whether the last message put in sent failed to go out.
func sendChat(ctx, run context.Context, s grpc.ClientStream, tag string, sent chan<- string, cfg streamConfig) (unsent bool) {
	defer s.CloseSend()
	t := time.NewTicker(cfg.interval)
	defer t.Stop()
	for i := 0; cfg.messages == 0 || i < cfg.messages; i++ {
		msg := fmt.Sprintf("%s-%d", tag, i)
		select {
		case sent <- msg:
		case <-run.Done():
			return false
		case <-ctx.Done():
			return false
		}
		if s.SendMsg(wrapperspb.String(msg)) != nil {
			return true // the stream has ended; RecvMsg says how
		}
		select {
		case <-t.C:
		case <-run.Done():
			return false
		case <-ctx.Done():
			return false
		}
	}
	return false
}

// failedEnd reports whether a stream that ended so failed.
func failedEnd(end string) bool {
	return end != endOK && end != endGoingAway && end != endStopped
}

// recordStream counts one stream; reopened says it was opened right after
// the server had sent the one before away.
func (t *tally) recordStream(r streamResult, reopened bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.s.Streams
	if r.opened {
		s.Opened++
		if reopened {
			s.Reopened[r.pid]++
			if r.end == endGoingAway && r.messages == 0 {
				s.Bounced[r.pid]++
			}
		}
	}
	s.Ends[r.end]++
	if r.end == endGoingAway && r.messages > 0 {
		s.SentAway[r.pid]++
	}
	if failedEnd(r.end) {
		s.Failed++
		t.note(fmt.Sprintf("stream ended: %v (answered by version=%q pid=%q)", r.err, r.version, r.pid))
	}
	s.Messages += r.messages
	if r.messages > 0 {
		s.PIDs[r.pid] += r.messages
		t.s.Last.Version = r.version
		t.s.Last.PID, _ = strconv.Atoi(r.pid)
	}
	s.Mismatched += r.mismatched
	s.LostInFlight += r.lost
	for _, p := range r.problems {
		t.note(fmt.Sprintf("%s (answered by version=%q pid=%q)", p, r.version, r.pid))
	}
}
