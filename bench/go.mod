module github.com/handoff-go/handoff/bench

go 1.24.0

replace github.com/handoff-go/handoff => ../

require (
	github.com/cloudflare/tableflip v1.2.3
	github.com/handoff-go/handoff v0.0.0-00010101000000-000000000000
)
