// Command scaling measures what a hot upgrade costs, and how the cost
// grows with the number of sockets handed over (Linux only):
//
//   - Upgrade() → ready latency for 1, 10, 100 and 1000 listening sockets,
//     for handoff and for tableflip v1.2.3, next to a bare fork+exec of the
//     same binary (the floor), with descriptor and process leak checks;
//   - the memory (VmRSS, VmHWM) and binary size of a hello-world HTTP
//     server under handoff against one with net/http alone;
//   - the cost of the LISTEN_PID exec shim, when upgrade.Options has it.
//
// Run it from the bench module:
//
//	cd bench && go run ./cmd/scaling [-quick] [-out DIR]
//
// It prints tables, and with -out writes DIR/scaling.json (raw numbers,
// durations in nanoseconds) and DIR/scaling.md. -quick takes fewer samples
// and runs in under a minute. How a sample is taken is explained in
// latency_linux.go.
package main
