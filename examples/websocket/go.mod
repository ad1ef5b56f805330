module github.com/handoff-go/handoff/examples/websocket

go 1.24.0

// The library itself, from this checkout: examples are built with the
// code beside them.
replace github.com/handoff-go/handoff => ../..

// github.com/coder/websocket v1.8.15 (the newest) asks for go 1.23, within
// the go 1.24 that handoff supports.

require (
	github.com/coder/websocket v1.8.15
	github.com/gobwas/ws v1.4.0
	github.com/handoff-go/handoff v0.0.0-00010101000000-000000000000
)

require (
	github.com/gobwas/httphead v0.1.0 // indirect
	github.com/gobwas/pool v0.2.1 // indirect
	golang.org/x/sys v0.41.0 // indirect
)
