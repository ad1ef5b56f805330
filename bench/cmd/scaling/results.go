package main

import "time"

// Results is everything one run measured, as written to scaling.json.
type Results struct {
	Machine    Machine        `json:"machine"`
	Source     string         `json:"source"`     // the handoff commit measured
	LoadStart  string         `json:"load_start"` // load averages before the run
	LoadEnd    string         `json:"load_end"`   // and after it
	Quick      bool           `json:"quick"`
	Iterations int            `json:"iterations"` // per latency cell
	Latency    []LatencyPoint `json:"latency"`
	Hygiene    Hygiene        `json:"hygiene"`
	Servers    []ServerCost   `json:"servers"`
	Wall       time.Duration  `json:"wall_ns"`
}

// Machine describes where the numbers were taken.
type Machine struct {
	CPUs       int    `json:"cpus"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	GoVersion  string `json:"go_version"`
	Kernel     string `json:"kernel"`
	CPUModel   string `json:"cpu_model"`
}

// Series is one mechanism's upgrades at one descriptor count.
type Series struct {
	Summary
	// ChildFDs counts the descriptors the new generation had open once
	// ready (empty for the bare child, which does not report).
	ChildFDs Range `json:"child_fds"`
	// ParentKept counts the descriptors the old generation still held
	// after its upgrade, its listeners closed, beyond those it had before
	// it listened: what the library keeps open until the process exits.
	ParentKept Range `json:"parent_kept_fds"`
	// Phases split the library's upgrades by the wall clock (nil for the
	// floor).
	Phases *Phases `json:"phases,omitempty"`
}

// Phases summarize where an upgrade's time goes: until the child's main
// began (fork, exec, the Go runtime's start), while it adopted its
// listeners (the library's New and Listen calls), and from then until the
// parent's Upgrade returned (Ready's exchange, and the parent waking up);
// and the child's call of its library's Ready, to its return in the
// child, which may come after the parent's Upgrade returned.
type Phases struct {
	Start     Summary `json:"start"`
	Adopt     Summary `json:"adopt"`
	Ready     Summary `json:"ready"`
	ReadyCall Summary `json:"ready_call"`
}

// LatencyPoint is the time from the parent's Upgrade call to its return,
// for one count of handed-over listeners.
type LatencyPoint struct {
	FDs       int    `json:"fds"`
	Exec      Series `json:"exec"`     // fork+exec of a child that reports at once, no listeners: the floor
	ExecFDs   Series `json:"exec_fds"` // the same with the listeners inherited
	Handoff   Series `json:"handoff"`
	Tableflip Series `json:"tableflip"`
	// Foreign is handoff with Options.ForeignChild: the child, a
	// systemd-style program, started through the exec shim that makes
	// LISTEN_PID its PID, and ready by sd_notify. Against Handoff it is
	// the cost of the LISTEN_PID mechanism.
	Foreign Series `json:"handoff_foreign_child"`
}

// Hygiene is what the driver saw of leaks over all latency iterations.
type Hygiene struct {
	// DriverFDs is the range of the driver's own descriptor count,
	// taken before the first iteration and after each one.
	DriverFDs Range `json:"driver_fds"`
	// Samples counts the samples run, floors and warm-ups included;
	// Reaped the new generations the driver reaped as subreaper once
	// their parent had exited.
	Samples int `json:"samples"`
	Reaped  int `json:"reaped"`
	// ChildrenLeft counts the driver's children (live or zombie) after
	// the last iteration of each descriptor count, summed.
	ChildrenLeft int `json:"children_left"`
}

// idleSettle is how long a hello server runs before its idle memory is
// read.
const idleSettle = 500 * time.Millisecond

// ServerCost is the memory and size of a hello-world HTTP server.
type ServerCost struct {
	Name     string `json:"name"`
	Binary   int64  `json:"binary_bytes"`
	Stripped int64  `json:"stripped_bytes"` // built with -ldflags="-s -w"
	Runs     int    `json:"runs"`           // the memory figures are medians of these
	Idle     Memory `json:"idle"`           // 500ms after it said where it listens
	Loaded   Memory `json:"loaded"`         // right after Requests requests
	Requests int64  `json:"requests"`       // per run
	Failed   int64  `json:"failed"`         // over all runs
}
