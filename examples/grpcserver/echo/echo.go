// Package echo is a gRPC service written by hand, without protoc: its
// messages are protobuf's well-known wrapper types, so a grpc.ServiceDesc
// and two method handlers are all it takes. The grpcserver example serves
// it and the grpcload client calls it.
//
//	service handoff.example.Echo {
//	  rpc Echo(google.protobuf.StringValue) returns (google.protobuf.StringValue);
//	  // Sleep answers after the given time (at most an hour): a long RPC
//	  // that keeps an old generation draining.
//	  rpc Sleep(google.protobuf.Duration) returns (google.protobuf.StringValue);
//	}
package echo

import (
	"context"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Full method names, as a client passes them to grpc.ClientConn.Invoke.
const (
	Service     = "handoff.example.Echo"
	EchoMethod  = "/" + Service + "/Echo"
	SleepMethod = "/" + Service + "/Sleep"
)

// Header metadata keys with which the server says which process answered.
const (
	VersionKey = "version"
	PIDKey     = "pid"
)

// MaxSleep bounds what Sleep accepts.
const MaxSleep = time.Hour

// Server answers the Echo service.
type Server struct{}

// Echo answers with the text it was sent.
func (Server) Echo(ctx context.Context, in *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
	return wrapperspb.String(in.GetValue()), nil
}

// Sleep answers "slept <d>" after d, or fails with the context's error if
// the RPC ends first.
func (Server) Sleep(ctx context.Context, in *durationpb.Duration) (*wrapperspb.StringValue, error) {
	if err := in.CheckValid(); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "sleep: %v", err)
	}
	d := in.AsDuration()
	if d < 0 || d > MaxSleep {
		return nil, status.Errorf(codes.InvalidArgument, "sleep: %v is not between 0 and %v", d, MaxSleep)
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

// service is what protoc would have generated as EchoServer.
type service interface {
	Echo(context.Context, *wrapperspb.StringValue) (*wrapperspb.StringValue, error)
	Sleep(context.Context, *durationpb.Duration) (*wrapperspb.StringValue, error)
}

// Desc describes the service for grpc.Server.RegisterService:
//
//	s.RegisterService(&echo.Desc, echo.Server{})
var Desc = grpc.ServiceDesc{
	ServiceName: Service,
	HandlerType: (*service)(nil),
	Methods: []grpc.MethodDesc{
		{MethodName: "Echo", Handler: unary(EchoMethod, service.Echo)},
		{MethodName: "Sleep", Handler: unary(SleepMethod, service.Sleep)},
	},
	Metadata: "echo.go (written by hand; there is no .proto file)",
}

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
