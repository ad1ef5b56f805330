module github.com/handoff-go/handoff/integration_test/testdata/gosdserver

go 1.24.0

require github.com/coreos/go-systemd/v22 v22.6.0
