// Package control is the protocol of handoff's control socket: a unix
// stream socket on which a deploy tool asks a running server (or the
// `handoff run` supervisor) to upgrade and waits for the verdict, or asks
// for its status. One JSON request line, one JSON response line, per
// connection. Only peers with the server's UID, or root, are served.
package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// MaxRequest bounds a request line; longer ones get an error reply.
const MaxRequest = 4096

// Commands.
const (
	CmdUpgrade  = "upgrade"
	CmdStatus   = "status"
	CmdRollback = "rollback"
)

// Request is one command.
type Request struct {
	Cmd    string `json:"cmd"`
	Reason string `json:"reason,omitempty"` // for rollback: why, for the logs
}

// The stages of a failed upgrade, as UpgradeResult.Stage names them: how
// far the new generation got. They are the values of package upgrade's
// Stage, and `handoff run` uses the same.
const (
	StageStart     = "start"     // it could not be started at all
	StageFailed    = "failed"    // it reported a failure, or broke the protocol
	StageExited    = "exited"    // it exited before it was ready
	StageTimeout   = "timeout"   // it was not ready in time and was stopped
	StageCanceled  = "canceled"  // the request, or the server, ended first
	StageProbation = "probation" // it said ready, then died within its probation
	StageCheck     = "check"     // its program failed the check and was not started
)

// UpgradeResult is the verdict of one upgrade request.
type UpgradeResult struct {
	OK bool `json:"ok"`
	// Refused says the upgrade did not begin (another was in progress,
	// say); Error says why, and nothing was started.
	Refused   bool      `json:"refused,omitempty"`
	OldPID    int       `json:"old_pid"`
	NewPID    int       `json:"new_pid,omitempty"`
	StartedAt time.Time `json:"started_at"`
	TookMS    float64   `json:"took_ms"`
	// On failure: how far it got, and why.
	Stage    string `json:"stage,omitempty"`
	Reason   string `json:"reason,omitempty"`
	ExitCode *int   `json:"exit_code,omitempty"`
	Signal   string `json:"signal,omitempty"`
	Stderr   string `json:"stderr,omitempty"`
	Error    string `json:"error,omitempty"`
}

// Status describes the live process.
type Status struct {
	PID         int            `json:"pid"`
	Version     string         `json:"version,omitempty"`
	Generation  int            `json:"generation"`
	StartedAt   time.Time      `json:"started_at"`
	Listeners   []string       `json:"listeners"`
	Draining    []int          `json:"draining"`
	LastUpgrade *UpgradeResult `json:"last_upgrade,omitempty"`
	// Supervisor is set by `handoff run`: its own PID is PID, and the
	// worker's is WorkerPID.
	Supervisor bool `json:"supervisor,omitempty"`
	WorkerPID  int  `json:"worker_pid,omitempty"`
	// Parked is the previous generation waiting in its rollback window;
	// nil if none does.
	Parked *Parked `json:"parked,omitempty"`
	// RolledBack says why a parked generation started this one, rolling
	// back; empty if it did not.
	RolledBack string `json:"rolled_back,omitempty"`
}

// Parked is a previous generation in its rollback window.
type Parked struct {
	PID    int     `json:"pid"`
	LeftMS float64 `json:"left_ms"` // until its window passes
}

// RollbackResult is the verdict of a rollback request.
type RollbackResult struct {
	OK    bool   `json:"ok"`
	PID   int    `json:"pid"` // the process that asked and now drains
	Error string `json:"error,omitempty"`
}

// Response answers a Request. Error is set when the request itself could
// not be served (malformed, unknown command, refused); an upgrade that ran
// and failed is reported in Upgrade, with OK false.
type Response struct {
	Error    string          `json:"error,omitempty"`
	Upgrade  *UpgradeResult  `json:"upgrade,omitempty"`
	Status   *Status         `json:"status,omitempty"`
	Rollback *RollbackResult `json:"rollback,omitempty"`
}

// Handler carries out commands.
type Handler interface {
	Upgrade(ctx context.Context) UpgradeResult
	Status() Status
	Rollback(ctx context.Context, reason string) RollbackResult
}

// Server serves the control protocol on a listener.
type Server struct {
	Handler Handler
	Logger  *slog.Logger // nil: discard

	active sync.WaitGroup
}

// Serve accepts until ln is closed, then waits for the requests in
// progress (an upgrade's verdict is always delivered) and returns.
func (s *Server) Serve(ln net.Listener) error {
	log := s.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	defer s.active.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		s.active.Add(1)
		go func() {
			defer s.active.Done()
			defer c.Close()
			s.serve(c, log)
		}()
	}
}

func (s *Server) serve(c net.Conn, log *slog.Logger) {
	reply := func(r Response) {
		c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		b, _ := json.Marshal(r)
		c.Write(append(b, '\n'))
	}
	if err := checkPeer(c); err != nil {
		log.Warn("control: refused a client", slog.Any("error", err))
		reply(Response{Error: err.Error()})
		return
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReaderSize(io.LimitReader(c, MaxRequest+1), MaxRequest+1).ReadSlice('\n')
	if err != nil {
		msg := "control: send one JSON request line, e.g. {\"cmd\":\"status\"}"
		if len(line) > MaxRequest {
			msg = fmt.Sprintf("control: request longer than %d bytes", MaxRequest)
		}
		reply(Response{Error: msg})
		return
	}
	c.SetReadDeadline(time.Time{})
	req, err := ParseRequest(line)
	if err != nil {
		reply(Response{Error: err.Error()})
		return
	}
	switch req.Cmd {
	case CmdStatus:
		st := s.Handler.Status()
		reply(Response{Status: &st})
	case CmdUpgrade:
		res := s.Handler.Upgrade(context.Background())
		reply(Response{Upgrade: &res})
	case CmdRollback:
		res := s.Handler.Rollback(context.Background(), req.Reason)
		reply(Response{Rollback: &res})
	}
}

// ParseRequest decodes one request line: a JSON object naming a known
// command. The error says what to send instead.
func ParseRequest(line []byte) (Request, error) {
	var req Request
	if len(line) > MaxRequest {
		return req, fmt.Errorf("control: request longer than %d bytes", MaxRequest)
	}
	if err := json.Unmarshal(line, &req); err != nil {
		return Request{}, fmt.Errorf("control: malformed request (%v): send one JSON line, e.g. {\"cmd\":\"status\"}", err)
	}
	switch req.Cmd {
	case CmdStatus, CmdUpgrade, CmdRollback:
		return req, nil
	}
	return Request{}, fmt.Errorf("control: unknown command %.40q (want %q, %q or %q)", req.Cmd, CmdUpgrade, CmdStatus, CmdRollback)
}

// ErrNoAnswer is wrapped by the error of Do when the server took the
// request but did not answer before ctx ended: an upgrade may still be on
// its way.
var ErrNoAnswer = errors.New("control: no answer in time")

// Do sends req to the control socket at path and returns the response.
// ctx bounds the whole exchange (an upgrade may take UpgradeTimeout plus
// probation).
func Do(ctx context.Context, path string, req Request) (Response, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return Response{}, fmt.Errorf("control: connect to %s: %w", path, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	b, _ := json.Marshal(req)
	_, werr := c.Write(append(b, '\n'))
	// Read even if the write failed: a server that refuses a client
	// answers why and closes before reading the request.
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil && werr != nil {
		return Response{}, fmt.Errorf("control: send: %w", werr)
	}
	if err != nil {
		if ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded) {
			// The connection's deadline, set from ctx's, may pass a moment
			// before ctx reports it.
			return Response{}, fmt.Errorf("%w from %s: %w", ErrNoAnswer, path, context.DeadlineExceeded)
		}
		return Response{}, fmt.Errorf("control: read answer from %s: %w", path, err)
	}
	var resp Response
	if err := json.Unmarshal(line, &resp); err != nil {
		return Response{}, fmt.Errorf("control: malformed answer from %s: %w", path, err)
	}
	return resp, nil
}

// Listen creates the control socket at path with mode 0600 from its
// first instant: it is bound in a new private directory beside path (mode
// 0700, so nobody else can reach it meanwhile), restricted, and linked
// into place, which fails with an error wrapping syscall.EADDRINUSE if
// path exists. Closing the listener does not remove path: the caller does,
// once no process serves it any more.
func Listen(path string) (*net.UnixListener, error) {
	dir, err := os.MkdirTemp(filepath.Dir(path), ".hc-")
	if err != nil {
		return nil, fmt.Errorf("control: directory beside %s: %w", path, err)
	}
	defer os.RemoveAll(dir)
	tmp := filepath.Join(dir, "s")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, err
	}
	ln.SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	if err := os.Link(tmp, path); err != nil {
		ln.Close()
		if errors.Is(err, fs.ErrExist) {
			return nil, &net.OpError{Op: "listen", Net: "unix", Addr: &net.UnixAddr{Name: path, Net: "unix"},
				Err: os.NewSyscallError("link", syscall.EADDRINUSE)}
		}
		return nil, err
	}
	return ln, nil
}
