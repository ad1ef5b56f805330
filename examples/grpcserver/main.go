// Command grpcserver is a gRPC server that is replaced by a new build of
// itself on SIGHUP, SIGUSR1 or SIGUSR2 without failing an RPC. It serves
// the standard health service (grpc.health.v1.Health) and a small Echo
// service written without protoc (package echo); every answer carries
// header metadata "version" and "pid" naming the process that gave it.
//
//	cd examples/grpcserver
//	go build -ldflags "-X main.version=v2" -o grpcserver .
//	./grpcserver -addr 127.0.0.1:50051 -pidfile grpc.pid &
//	go run ./cmd/grpcload -addr 127.0.0.1:50051 -duration 10s &
//	kill -HUP $(cat grpc.pid)
//
// It is a module of its own, so that gRPC never enters the dependency
// graph of the handoff library.
//
// # Draining
//
// grpc.Server drains by itself (GracefulStop, then Stop), and
// [upgrade.Upgrader.Serve] knows how to drive it: when a new generation is
// live it stops accepting itself (the new generation accepts from the same
// socket), waits until gRPC has taken up every connection it accepted, and
// only then calls GracefulStop, which sends GOAWAY on every connection and
// waits for the RPCs in flight. Clients open a new connection, which
// reaches the new generation; RPCs that raced with the GOAWAY were never
// processed and gRPC clients retry them transparently. Past -drain-timeout,
// Stop cuts what is left.
//
// GracefulStop alone is not enough: it closes, unanswered, a connection
// that Serve accepted just before (the client sees "error reading server
// preface: connection reset by peer", status Unavailable). Measured with
// the integration test's load: 9 failed RPCs in 30 upgrades that way, none
// in 50 in the order Serve keeps.
//
// # Long-lived streams
//
// Long-lived streams (Echo's Ticks and Chat, health's Watch) would keep
// GracefulStop waiting until they end, and be cut at -drain-timeout
// (status Unavailable, "transport is closing"), the old generation living
// on until then. So the server ends them itself at the drain: when Serve
// calls GracefulStop (goAwayFirst), every stream's context ends
// (endStreams), its handler finishes the message it is sending and
// returns, and the client gets status Unavailable "server going away:
// reconnect", its cue to open the stream again. GracefulStop has queued
// GOAWAY on the connection by then, so the client opens the new stream on
// a new connection, which the new generation accepts from the shared
// socket. What a client had sent on a Chat stream and not seen answered is
// its to send again. Unary RPCs, however long, are left to finish.
//
// The streams end at GracefulStop rather than as soon as
// [upgrade.Upgrader.Exit] closes, because until its GOAWAY a client opens
// its stream again over the old connection, to the old generation, which
// can only send it away again; and Serve may take a while between the two
// (it first waits for gRPC to take up every connection it accepted).
// Measured with the integration test's 16 streams and 20 upgrades: ended
// at Exit, streams were sent away again 130 to 380 times a run, up to 23
// times each in one upgrade; ended at GracefulStop, 18 to 60 times, under
// twice each (a stream's status can still overtake the GOAWAY queued for
// its connection).
//
// SIGTERM and SIGINT stop it gracefully (exit status 0).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/handoff-go/handoff/examples/grpcserver/echo"
	"github.com/handoff-go/handoff/upgrade"
)

// version is set at build time with -ldflags "-X main.version=v2".
var version = "dev"

func main() {
	addr := flag.String("addr", "127.0.0.1:50051", "address to listen on")
	pidFile := flag.String("pidfile", "", "pidfile naming the live process (empty: none)")
	upgradeTimeout := flag.Duration("upgrade-timeout", time.Minute, "how long a new generation may take to become ready")
	drainTimeout := flag.Duration("drain-timeout", 30*time.Second, "how long an old generation may drain")
	controlSocket := flag.String("control", "", "control socket for `handoff upgrade` and `handoff status` (empty: none)")
	flag.Parse()
	opts := upgrade.Options{
		PIDFile:          *pidFile,
		UpgradeTimeout:   *upgradeTimeout,
		DrainTimeout:     *drainTimeout,
		ControlSocket:    *controlSocket,
		Version:          version,
		UpgradeOnSIGUSR1: true,
	}
	if err := run(*addr, opts); err != nil {
		fmt.Fprintln(os.Stderr, "grpcserver:", err)
		os.Exit(1)
	}
}

func run(addr string, opts upgrade.Options) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With(slog.String("version", version))
	opts.Logger = log
	u, err := upgrade.New(opts)
	if err != nil {
		return err
	}
	defer u.Stop()
	u.HandleSignals()

	ln, err := u.Listen(context.Background(), "tcp", addr)
	if err != nil {
		return err
	}
	id := metadata.Pairs(echo.VersionKey, version, echo.PIDKey, strconv.Itoa(os.Getpid()))
	goingAway := make(chan struct{}) // closed to end the streams (goAwayFirst)
	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
			if err := grpc.SetHeader(ctx, id); err != nil {
				return nil, err
			}
			return handler(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
			if err := ss.SetHeader(id); err != nil {
				return err
			}
			return handler(srv, ss)
		}, endStreams(goingAway)),
	)
	srv.RegisterService(&echo.Desc, echo.Server{Version: version, PID: os.Getpid()})
	// Serving throughout, the drain included: the clients of a draining
	// generation are not to go elsewhere; they already are, with GOAWAY.
	healthpb.RegisterHealthServer(srv, health.NewServer())

	if err := u.Ready(); err != nil {
		return err
	}
	return u.Serve(goAwayFirst{Server: srv, endStreams: sync.OnceFunc(func() { close(goingAway) })}, ln)
}

// goAwayFirst is srv as Serve drains it: it ends the streams as
// GracefulStop begins, which sends GOAWAY on every connection first.
type goAwayFirst struct {
	*grpc.Server
	endStreams func()
}

func (s goAwayFirst) GracefulStop() {
	s.endStreams()
	s.Server.GracefulStop()
}

// errGoingAway ends the streams of a draining generation: a status that
// tells the client to open its stream again, on the new generation.
var errGoingAway = status.Error(codes.Unavailable, echo.GoingAway)

// endStreams ends every stream when goingAway is closed rather than let it
// hold the drain: the handler's context ends, and when the handler returns
// because of it, the client gets errGoingAway. A stream that comes after
// is sent away at once.
func endStreams(goingAway <-chan struct{}) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		select {
		case <-goingAway:
			return errGoingAway // sent before the client saw GOAWAY
		default:
		}
		ctx, cancel := context.WithCancel(ss.Context())
		defer cancel()
		go func() {
			select {
			case <-goingAway:
				cancel()
			case <-ctx.Done():
			}
		}()
		err := handler(srv, &drainingStream{ServerStream: ss, ctx: ctx})
		if err != nil && ctx.Err() != nil && ss.Context().Err() == nil {
			return errGoingAway // ended by the drain, not by the client
		}
		return err
	}
}

// drainingStream is a stream whose context also ends at the drain.
type drainingStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *drainingStream) Context() context.Context { return s.ctx }
