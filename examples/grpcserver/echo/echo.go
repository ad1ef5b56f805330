// Package echo is a gRPC service written by hand, without protoc: its
// messages are protobuf's well-known types, so a grpc.ServiceDesc and a
// handler per method are all it takes. The grpcserver example serves it
// and the grpcload client calls it.
//
//	service handoff.example.Echo {
//	  rpc Echo(google.protobuf.StringValue) returns (google.protobuf.StringValue);
//	  // Sleep answers after the given time (at most an hour): a long RPC
//	  // that keeps an old generation draining.
//	  rpc Sleep(google.protobuf.Duration) returns (google.protobuf.StringValue);
//	  // Ticks sends "version=V pid=P seq=N" at once and then every
//	  // interval (1ms to an hour), N counting from 1, until the RPC ends.
//	  rpc Ticks(google.protobuf.Duration) returns (stream google.protobuf.StringValue);
//	  // Chat answers each message M with "version=V pid=P M", in order,
//	  // until the client closes its side (status OK) or the RPC ends.
//	  rpc Chat(stream google.protobuf.StringValue) returns (stream google.protobuf.StringValue);
//	}
//
// The streaming methods end when their context does: give them one that
// ends when the server drains, and they end there (see grpcserver).
package echo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Full method names, as a client passes them to grpc.ClientConn.Invoke
// and NewStream.
const (
	Service     = "handoff.example.Echo"
	EchoMethod  = "/" + Service + "/Echo"
	SleepMethod = "/" + Service + "/Sleep"
	TicksMethod = "/" + Service + "/Ticks"
	ChatMethod  = "/" + Service + "/Chat"
)

// Header metadata keys with which the server says which process answered.
const (
	VersionKey = "version"
	PIDKey     = "pid"
)

// GoingAway is the message of the status Unavailable with which
// grpcserver ends a stream when it drains: open the stream again.
const GoingAway = "server going away: reconnect"

// MaxSleep bounds what Sleep accepts, and the interval of Ticks.
const MaxSleep = time.Hour

// MinInterval bounds the interval of Ticks from below.
const MinInterval = time.Millisecond

// Server answers the Echo service. Version and PID name the process in
// the messages of Ticks and Chat.
type Server struct {
	Version string
	PID     int
}

// Echo answers with the text it was sent.
func (Server) Echo(ctx context.Context, in *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
	return wrapperspb.String(in.GetValue()), nil
}

// Sleep answers "slept <d>" after d, or fails with the context's error if
// the RPC ends first.
func (Server) Sleep(ctx context.Context, in *durationpb.Duration) (*wrapperspb.StringValue, error) {
	d, err := duration("sleep", in, 0)
	if err != nil {
		return nil, err
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return wrapperspb.String("slept " + d.String()), nil
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
}

// Ticks sends a numbered message at once and then every interval, until
// the stream's context ends; it returns the context's status then.
func (s Server) Ticks(in *durationpb.Duration, stream grpc.ServerStreamingServer[wrapperspb.StringValue]) error {
	d, err := duration("ticks", in, MinInterval)
	if err != nil {
		return err
	}
	ctx := stream.Context()
	t := time.NewTicker(d)
	defer t.Stop()
	for seq := 1; ; seq++ {
		if err := stream.Send(wrapperspb.String(fmt.Sprintf("%s seq=%d", s.id(), seq))); err != nil {
			return err
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
	}
}

// Chat answers every message it receives, in order. It returns nil once
// the client has closed its side and every message is answered, or the
// context's status when the stream's context ends: after the answer it
// was sending, not in the middle of a Recv.
func (s Server) Chat(stream grpc.BidiStreamingServer[wrapperspb.StringValue, wrapperspb.StringValue]) error {
	ctx := stream.Context()
	in := make(chan *wrapperspb.StringValue)
	recvErr := make(chan error, 1)
	// Recv returns only with a message or when the stream itself ends, not
	// when ctx does, so it runs on its own: Chat may return while a Recv
	// waits, and that Recv ends with the stream, which grpc ends then.
	go func() {
		for {
			m, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			select {
			case in <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	for {
		select {
		case m := <-in:
			if err := stream.Send(wrapperspb.String(s.id() + " " + m.GetValue())); err != nil {
				return err
			}
		case err := <-recvErr:
			if errors.Is(err, io.EOF) {
				return nil // the client is done
			}
			return err
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
	}
}

// id names the process as the streaming methods' messages begin.
func (s Server) id() string { return fmt.Sprintf("version=%s pid=%d", s.Version, s.PID) }

// duration checks that in is a duration between lowest and MaxSleep, for
// the method named.
func duration(method string, in *durationpb.Duration, lowest time.Duration) (time.Duration, error) {
	if err := in.CheckValid(); err != nil {
		return 0, status.Errorf(codes.InvalidArgument, "%s: %v", method, err)
	}
	d := in.AsDuration()
	if d < lowest || d > MaxSleep {
		return 0, status.Errorf(codes.InvalidArgument, "%s: %v is not between %v and %v", method, d, lowest, MaxSleep)
	}
	return d, nil
}

// service is what protoc would have generated as EchoServer.
type service interface {
	Echo(context.Context, *wrapperspb.StringValue) (*wrapperspb.StringValue, error)
	Sleep(context.Context, *durationpb.Duration) (*wrapperspb.StringValue, error)
	Ticks(*durationpb.Duration, grpc.ServerStreamingServer[wrapperspb.StringValue]) error
	Chat(grpc.BidiStreamingServer[wrapperspb.StringValue, wrapperspb.StringValue]) error
}

// Desc describes the service for grpc.Server.RegisterService:
//
//	s.RegisterService(&echo.Desc, echo.Server{Version: "v1", PID: os.Getpid()})
var Desc = grpc.ServiceDesc{
	ServiceName: Service,
	HandlerType: (*service)(nil),
	Methods: []grpc.MethodDesc{
		{MethodName: "Echo", Handler: unary(EchoMethod, service.Echo)},
		{MethodName: "Sleep", Handler: unary(SleepMethod, service.Sleep)},
	},
	Streams: []grpc.StreamDesc{
		{StreamName: "Ticks", Handler: ticks, ServerStreams: true},
		{StreamName: "Chat", Handler: chat, ServerStreams: true, ClientStreams: true},
	},
	Metadata: "echo.go (written by hand; there is no .proto file)",
}

// TicksDesc and ChatDesc describe the streams for grpc.ClientConn.NewStream.
var (
	TicksDesc = grpc.StreamDesc{StreamName: "Ticks", ServerStreams: true}
	ChatDesc  = grpc.StreamDesc{StreamName: "Chat", ServerStreams: true, ClientStreams: true}
)

// unary makes the grpc.MethodDesc handler of method, which decodes a Req
// and calls call through the server's interceptors, as protoc's generated
// _Service_Method_Handler functions do.
func unary[Req, Resp any](method string, call func(service, context.Context, *Req) (Resp, error)) func(any, context.Context, func(any) error, grpc.UnaryServerInterceptor) (any, error) {
	return func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
		in := new(Req)
		if err := dec(in); err != nil {
			return nil, err
		}
		if interceptor == nil {
			return call(srv.(service), ctx, in)
		}
		info := &grpc.UnaryServerInfo{Server: srv, FullMethod: method}
		return interceptor(ctx, in, info, func(ctx context.Context, req any) (any, error) {
			return call(srv.(service), ctx, req.(*Req))
		})
	}
}

// ticks and chat are the grpc.StreamDesc handlers, as protoc generates
// them: grpc has run the stream interceptors already.
func ticks(srv any, stream grpc.ServerStream) error {
	in := new(durationpb.Duration)
	if err := stream.RecvMsg(in); err != nil {
		return err
	}
	return srv.(service).Ticks(in, &grpc.GenericServerStream[durationpb.Duration, wrapperspb.StringValue]{ServerStream: stream})
}

func chat(srv any, stream grpc.ServerStream) error {
	return srv.(service).Chat(&grpc.GenericServerStream[wrapperspb.StringValue, wrapperspb.StringValue]{ServerStream: stream})
}
