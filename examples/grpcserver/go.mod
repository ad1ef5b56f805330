module github.com/handoff-go/handoff/examples/grpcserver

go 1.24.0

// The library itself, from this checkout: examples are built with the
// code beside them.
replace github.com/handoff-go/handoff => ../..

// grpc v1.80.0 is the newest release whose go.mod asks for no more than
// go 1.24, the version handoff supports (v1.81.0 asks for 1.25).

require (
	github.com/handoff-go/handoff v0.0.0-00010101000000-000000000000
	google.golang.org/grpc v1.80.0
	google.golang.org/protobuf v1.36.11
)

require (
	golang.org/x/net v0.49.0 // indirect
	golang.org/x/sys v0.41.0 // indirect
	golang.org/x/text v0.33.0 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20260120221211-b8f7ae30c516 // indirect
)
