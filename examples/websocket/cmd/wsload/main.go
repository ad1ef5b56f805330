// Command wsload drives WebSocket clients at the websocket example and
// counts what they see across upgrades. At the end it prints a JSON
// summary on standard output:
//
//	wsload -addr 127.0.0.1:8080 -clients 50 -interval 5ms -duration 10s
//
// It stops after -duration, or on SIGTERM or SIGINT.
//
// Each client dials ws://ADDR/ws and sends a numbered text message
// ("c<client>-<n>", n counting on across connections) every -interval,
// without waiting for the echo, and reads the echoes: each must be
// "<version> <pid> <message>" for the oldest message not yet echoed. The
// pid may change on a connection — the server passed it to its new
// generation, which answers on — and each change is counted as a move;
// an echo from a pid the connection had left behind is mismatched, as is
// anything else but the echo due; an echo of a later message is counted
// as reordered.
//
// When the server ends a connection, the client classifies how: a close
// frame with status 1001 (going away) is what a draining server sends,
// and the messages it had sent that were not echoed by then are counted
// as lost (they were in flight: a server discards data during the close
// handshake). Any other close status, a connection that broke without a
// close frame, and a failed dial are abnormal. Either way the client
// dials again at once and goes on.
//
// At the end, each client stops sending, waits up to -timeout for the
// echoes still due and closes its connection itself with status 1000; what
// was still unanswered then is counted apart.
//
// Dials use an HTTP transport of their own with no proxy and no reuse of
// connections, so that nothing is retried behind the counts' back.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
)

// Summary is what wsload prints. For every run,
// Sent == Echoed + Lost + UnansweredAbnormal + UnansweredAtEnd + Reordered
// (a reordered echo answers a message too, out of turn).
type Summary struct {
	Clients int `json:"clients"`
	// Sent counts messages written in full; Unsent, messages whose write
	// failed because the connection was closing (never counted as sent).
	Sent   int64 `json:"sent"`
	Unsent int64 `json:"unsent"`
	// Echoed counts messages answered in order with the right text.
	Echoed int64 `json:"echoed"`
	// Lost counts messages sent but not echoed when a 1001 close came.
	Lost int64 `json:"lost"`
	// UnansweredAbnormal counts messages sent but not echoed when a
	// connection ended abnormally; UnansweredAtEnd, at the end of the run.
	UnansweredAbnormal int64 `json:"unanswered_abnormal"`
	UnansweredAtEnd    int64 `json:"unanswered_at_end"`
	// Reordered counts echoes of a message other than the oldest one
	// due; Mismatched, echoes of no message due, malformed ones, and ones
	// from another pid than the connection's earlier echoes.
	Reordered  int64 `json:"reordered"`
	Mismatched int64 `json:"mismatched"`
	// Moves counts the times a connection went on with another server
	// process (its echoes' pid changed) without a reconnect.
	Moves int64 `json:"moves"`
	// Closes counts connections the server closed, by close status.
	Closes map[string]int64 `json:"closes"`
	// Abnormal counts connections that ended otherwise than with a 1001
	// close, and failed dials; AbnormalByKind says how ("close <code>",
	// "read error", "dial").
	Abnormal       int64            `json:"abnormal"`
	AbnormalByKind map[string]int64 `json:"abnormal_by_kind"`
	// Dials counts dial attempts; DialFailures, those that failed.
	Dials        int64 `json:"dials"`
	DialFailures int64 `json:"dial_failures"`
	// PIDs and Versions count echoes by the server process that gave them.
	PIDs     map[string]int64 `json:"pids"`
	Versions map[string]int64 `json:"versions"`
	// Last is the version and pid of the last echo received.
	Last struct {
		Version string `json:"version"`
		PID     int    `json:"pid"`
	} `json:"last"`
	Errors  []string `json:"errors,omitempty"` // the first anomalies, in words
	Seconds float64  `json:"seconds"`
}

// maxErrors bounds Summary.Errors.
const maxErrors = 20

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "server address")
	clients := flag.Int("clients", 8, "WebSocket clients, each on one connection at a time")
	interval := flag.Duration("interval", 5*time.Millisecond, "time between two messages of a client")
	duration := flag.Duration("duration", 0, "stop after this long (0: at SIGTERM or SIGINT)")
	timeout := flag.Duration("timeout", 5*time.Second, "bound of a dial, of a write, and of the wait for the last echoes at the end")
	flag.Parse()
	if *clients <= 0 || *interval <= 0 || *timeout <= 0 {
		fmt.Fprintln(os.Stderr, "wsload: -clients, -interval and -timeout must be positive")
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if *duration > 0 {
		ctx, stop = context.WithTimeout(ctx, *duration)
		defer stop()
	}

	t := &tally{s: Summary{
		Clients:        *clients,
		Closes:         map[string]int64{},
		AbnormalByKind: map[string]int64{},
		PIDs:           map[string]int64{},
		Versions:       map[string]int64{},
	}}
	hc := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	start := time.Now()
	var wg sync.WaitGroup
	for k := range *clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &client{
				id:       k,
				url:      "ws://" + *addr + "/ws",
				hc:       hc,
				interval: *interval,
				timeout:  *timeout,
				t:        t,
			}
			c.run(ctx)
		}()
	}
	wg.Wait()

	t.s.Sent = t.nsent.Load()
	t.s.Seconds = time.Since(start).Seconds()
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(&t.s); err != nil {
		fmt.Fprintln(os.Stderr, "wsload:", err)
		os.Exit(1)
	}
}

// client is one WebSocket client, dialing again whenever its connection
// ends, until the run does.
type client struct {
	id       int
	url      string
	hc       *http.Client
	interval time.Duration
	timeout  time.Duration
	t        *tally
	seq      int // the number of the next message, across connections
}

func (c *client) run(ctx context.Context) {
	for ctx.Err() == nil {
		dctx, cancel := context.WithTimeout(ctx, c.timeout)
		conn, _, err := websocket.Dial(dctx, c.url, &websocket.DialOptions{HTTPClient: c.hc})
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return // the run ended while dialing: not a failure
			}
			c.t.dialFailed(c.id, err)
			select {
			case <-ctx.Done():
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		c.t.dialed()
		c.session(ctx, conn)
	}
}

// session is one connection's life: a writer sends, a reader checks the
// echoes, and the first read error says how the connection ended.
func (c *client) session(ctx context.Context, conn *websocket.Conn) {
	defer conn.CloseNow()
	s := &session{}
	readErr := make(chan error, 1)
	go func() { readErr <- c.read(conn, s) }()
	stopWriter := make(chan struct{})
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		c.write(conn, s, stopWriter)
	}()
	stopWriting := func() {
		close(stopWriter)
		<-writerDone
	}

	select {
	case err := <-readErr:
		stopWriting()
		c.t.ended(c.id, err, s.unanswered())
		return
	case <-ctx.Done():
	}
	// The run is over: collect the echoes still due, then close.
	stopWriting()
	deadline := time.Now().Add(c.timeout)
	for s.unanswered() > 0 && time.Now().Before(deadline) {
		select {
		case err := <-readErr: // the server ended it first
			c.t.ended(c.id, err, s.unanswered())
			return
		case <-time.After(time.Millisecond):
		}
	}
	select {
	case err := <-readErr:
		c.t.ended(c.id, err, s.unanswered())
		return
	default:
	}
	conn.Close(websocket.StatusNormalClosure, "load done")
	<-readErr // our own close: not counted
	c.t.finished(s.unanswered())
}

// write sends a message every interval until stop is closed or a write
// fails (the reader then learns why the connection ended).
func (c *client) write(conn *websocket.Conn, s *session, stop <-chan struct{}) {
	tick := time.NewTicker(c.interval)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		msg := fmt.Sprintf("c%d-%d", c.id, c.seq)
		c.seq++
		s.push(msg) // before the write: the echo may come before Write returns
		ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
		err := conn.Write(ctx, websocket.MessageText, []byte(msg))
		cancel()
		if err != nil {
			if s.unpush(msg) {
				c.t.unsent()
			} else {
				c.t.sent() // echoed already: it went out whole
			}
			return
		}
		c.t.sent()
	}
}

// read checks echoes until the connection ends, and returns the error
// that ended it.
func (c *client) read(conn *websocket.Conn, s *session) error {
	for {
		typ, b, err := conn.Read(context.Background())
		if err != nil {
			return err
		}
		if typ != websocket.MessageText {
			c.t.mismatched(c.id, fmt.Sprintf("a %v message", typ))
			continue
		}
		c.t.echo(c.id, s, string(b))
	}
}

// session is the state of one connection that the writer and the reader
// share.
type session struct {
	mu      sync.Mutex
	pending []string // sent and not yet echoed, oldest first
	pids    []string // the pids that answered on this connection, in turn
}

func (s *session) push(msg string) {
	s.mu.Lock()
	s.pending = append(s.pending, msg)
	s.mu.Unlock()
}

// unpush removes msg, the last message pushed, if it is still due.
func (s *session) unpush(msg string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(s.pending); n > 0 && s.pending[n-1] == msg {
		s.pending = s.pending[:n-1]
		return true
	}
	return false
}

func (s *session) unanswered() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pending)
}

// tally adds up what all clients saw.
type tally struct {
	mu sync.Mutex
	s  Summary

	nsent atomic.Int64 // the hot counter, apart from the lock
}

func (t *tally) sent() { t.nsent.Add(1) }

func (t *tally) unsent() {
	t.mu.Lock()
	t.s.Unsent++
	t.mu.Unlock()
}

func (t *tally) dialed() {
	t.mu.Lock()
	t.s.Dials++
	t.mu.Unlock()
}

func (t *tally) dialFailed(id int, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.s.Dials++
	t.s.DialFailures++
	t.abnormalLocked(id, "dial", err.Error())
}

// echo checks one echo against the oldest message due on s.
func (t *tally) echo(id int, s *session, echo string) {
	version, pid, msg := split(echo)
	s.mu.Lock()
	defer s.mu.Unlock()
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, err := strconv.Atoi(pid); err != nil || version == "" {
		t.mismatchedLocked(id, fmt.Sprintf("malformed echo %q", echo))
		return
	}
	switch n := len(s.pids); {
	case n == 0:
		s.pids = append(s.pids, pid)
	case pid == s.pids[n-1]:
	case slices.Contains(s.pids, pid):
		t.mismatchedLocked(id, fmt.Sprintf("echo %q from pid %s after pid %s answered on the connection", echo, pid, s.pids[n-1]))
		return
	default:
		s.pids = append(s.pids, pid) // passed on to a new generation
		t.s.Moves++
	}
	i := slices.Index(s.pending, msg)
	switch {
	case i == 0:
		t.s.Echoed++
	case i > 0:
		t.s.Reordered++
		t.errorLocked(fmt.Sprintf("client %d: echo of %q while %q was due first", id, msg, s.pending[0]))
	default:
		t.mismatchedLocked(id, fmt.Sprintf("echo %q of no message due (due: %d)", echo, len(s.pending)))
		return
	}
	s.pending = slices.Delete(s.pending, i, i+1)
	t.s.PIDs[pid]++
	t.s.Versions[version]++
	t.s.Last.Version = version
	t.s.Last.PID, _ = strconv.Atoi(pid)
}

func (t *tally) mismatched(id int, what string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.mismatchedLocked(id, what)
}

func (t *tally) mismatchedLocked(id int, what string) {
	t.s.Mismatched++
	t.errorLocked(fmt.Sprintf("client %d: %s", id, what))
}

// ended counts a connection the server ended (or that broke) with err,
// with unanswered messages still due.
func (t *tally) ended(id int, err error, unanswered int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	code := websocket.CloseStatus(err)
	if code == -1 {
		t.s.UnansweredAbnormal += int64(unanswered)
		t.abnormalLocked(id, "read error", err.Error())
		return
	}
	t.s.Closes[strconv.Itoa(int(code))]++
	if code != websocket.StatusGoingAway {
		t.s.UnansweredAbnormal += int64(unanswered)
		t.abnormalLocked(id, "close "+strconv.Itoa(int(code)), err.Error())
		return
	}
	t.s.Lost += int64(unanswered)
}

// finished counts a connection the client closed at the end of the run.
func (t *tally) finished(unanswered int) {
	t.mu.Lock()
	t.s.UnansweredAtEnd += int64(unanswered)
	t.mu.Unlock()
}

func (t *tally) abnormalLocked(id int, kind, msg string) {
	t.s.Abnormal++
	t.s.AbnormalByKind[kind]++
	t.errorLocked(fmt.Sprintf("client %d: %s: %s", id, kind, msg))
}

func (t *tally) errorLocked(msg string) {
	if len(t.s.Errors) < maxErrors {
		t.s.Errors = append(t.s.Errors, msg)
	}
}

// split parses "<version> <pid> <message>".
func split(echo string) (version, pid, msg string) {
	f := strings.SplitN(echo, " ", 3)
	if len(f) != 3 {
		return "", "", ""
	}
	return f[0], f[1], f[2]
}
