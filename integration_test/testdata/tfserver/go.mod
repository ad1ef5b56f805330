module github.com/handoff-go/handoff/integration_test/testdata/tfserver

go 1.24.0

require github.com/cloudflare/tableflip v1.2.3
