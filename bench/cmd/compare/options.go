package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/handoff-go/handoff/internal/loadgen"
)

// mechanism is one way of replacing a running server with a new build.
type mechanism struct {
	Name string
	Pkg  string // the server's package, relative to the bench module
	// HandOver: the running process starts the new build itself on
	// SIGHUP. Otherwise the driver stops the old process (SIGTERM, wait
	// for it to exit) and then starts the new build.
	HandOver bool
}

// mechanisms are every mechanism compared, in report order. tableflip is
// the reference the ratios are computed against.
var mechanisms = []mechanism{
	{Name: "handoff", Pkg: "./servers/handoff", HandOver: true},
	{Name: "tableflip", Pkg: "./servers/tableflip", HandOver: true},
	{Name: "reuseport", Pkg: "./servers/reuseport", HandOver: true},
	{Name: "stopstart", Pkg: "./servers/stopstart", HandOver: false},
}

// reference is the mechanism ratios are computed against.
const reference = "tableflip"

// loadConfig is how the clients load the server.
type loadConfig struct {
	Mode    loadgen.Mode
	Clients int
	// Idle: keep-alive clients that pause idlePause after each request,
	// so that the pool of connections mostly sits idle.
	Idle bool
	TLS  bool // HTTPS; with NewConn, a full TLS handshake per request
	// HTTP2: HTTP/2 over TLS (TLS is set too), keep-alive, a connection
	// per client with one stream in flight.
	HTTP2 bool
}

// idlePause is how long an idle-N client waits between requests: longer
// than an upgrade takes, so that the upgrade finds most connections idle;
// shorter than the servers' idle timeout.
const idlePause = time.Second

// Name is the configuration's short name: "newconn-32", "keepalive-128",
// "idle-300", "tls-newconn-32", "h2-keepalive-32".
func (c loadConfig) Name() string {
	m := "newconn"
	switch {
	case c.Idle:
		m = "idle"
	case c.Mode == loadgen.KeepAlive:
		m = "keepalive"
	}
	switch {
	case c.HTTP2:
		m = "h2-" + m
	case c.TLS:
		m = "tls-" + m
	}
	return m + "-" + strconv.Itoa(c.Clients)
}

// Title describes the configuration in words.
func (c loadConfig) Title() string {
	m := "new connection per request"
	switch {
	case c.Idle:
		m = fmt.Sprintf("idle keep-alive pool (a request per connection every %v)", idlePause)
	case c.Mode == loadgen.KeepAlive:
		m = "keep-alive"
	}
	switch {
	case c.HTTP2:
		m = "HTTP/2 over TLS, " + m + " (a connection per client)"
	case c.TLS:
		m = "HTTPS, " + m
		if c.Mode == loadgen.NewConn {
			m += " (a TLS handshake each)"
		}
	}
	return fmt.Sprintf("%s, %d clients", m, c.Clients)
}

// Load is the load generator's configuration for c.
func (c loadConfig) Load() loadgen.Config {
	lc := loadgen.Config{Clients: c.Clients, Mode: c.Mode, HTTP2: c.HTTP2}
	if c.Idle {
		lc.Interval = idlePause
	}
	return lc
}

// parseConfig parses a configuration name such as "keepalive-128",
// "tls-newconn-32" or "h2-keepalive-32".
func parseConfig(s string) (loadConfig, error) {
	var c loadConfig
	rest, tlsOn := strings.CutPrefix(s, "tls-")
	if !tlsOn {
		rest, c.HTTP2 = strings.CutPrefix(s, "h2-")
	}
	c.TLS = tlsOn || c.HTTP2
	mode, n, ok := strings.Cut(rest, "-")
	clients, err := strconv.Atoi(n)
	if !ok || err != nil || clients < 1 {
		return loadConfig{}, fmt.Errorf("configuration %q: want newconn-N, keepalive-N or idle-N with N clients, each optionally after tls- or (but newconn) h2- (e.g. keepalive-128, tls-newconn-32, h2-keepalive-32)", s)
	}
	c.Clients = clients
	switch mode {
	case "newconn":
		c.Mode = loadgen.NewConn
	case "keepalive":
		c.Mode = loadgen.KeepAlive
	case "idle":
		c.Mode, c.Idle = loadgen.KeepAlive, true
	default:
		return loadConfig{}, fmt.Errorf("configuration %q: mode %q is none of newconn, keepalive and idle", s, mode)
	}
	if c.HTTP2 && c.Mode == loadgen.NewConn {
		return loadConfig{}, fmt.Errorf("configuration %q: HTTP/2 clients keep their connections; use h2-keepalive-N or h2-idle-N", s)
	}
	return c, nil
}

// options are the command line, checked and with defaults filled in.
type options struct {
	Out        string
	Quick      bool
	Runs       int
	Upgrades   int
	Interval   time.Duration // between upgrade signals
	Warmup     time.Duration // load before the baseline window
	Baseline   time.Duration // the pre-upgrade window latencies are compared with
	Mechanisms []mechanism
	Configs    []loadConfig
}

const (
	fullConfigs  = "newconn-32,newconn-128,keepalive-32,keepalive-128,newconn-512,keepalive-512,tls-newconn-32,tls-keepalive-32,h2-keepalive-32,idle-300"
	quickConfigs = "newconn-32,keepalive-128"
)

// errUsage is returned for -h: the usage has been printed, nothing failed.
var errUsage = errors.New("usage requested")

// parseFlags parses the command line (without the program name). Usage
// and flag errors are written to stderr.
func parseFlags(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		o        options
		mechList string
		cfgList  string
	)
	fs.StringVar(&o.Out, "out", "", "directory for results.json, results.md, timeline.png and server logs (required; created if missing)")
	fs.BoolVar(&o.Quick, "quick", false, "a short run: 1 run of 2 configurations ("+quickConfigs+"), 3 upgrades each; under 2 minutes on 2 cores")
	fs.IntVar(&o.Runs, "runs", 0, "runs of every mechanism and configuration, alternating; medians are reported (0: 3, with -quick 1)")
	fs.IntVar(&o.Upgrades, "upgrades", 0, "upgrades per run (0: 10, with -quick 3)")
	fs.DurationVar(&o.Interval, "interval", time.Second, "time between upgrade signals (at least 200ms)")
	fs.DurationVar(&o.Baseline, "baseline", 0, "pre-upgrade window of load, after a 500ms warm-up (0: 2s, with -quick 1s)")
	fs.StringVar(&mechList, "mechanisms", "", "comma-separated mechanisms to compare (empty: handoff,tableflip,reuseport,stopstart)")
	fs.StringVar(&cfgList, "configs", "", "comma-separated load configurations: newconn-N, keepalive-N or idle-N (keep-alive, a request per connection every second) for N clients, each optionally as tls-... for HTTPS or h2-... for HTTP/2 over TLS (empty: "+fullConfigs+", with -quick "+quickConfigs+")")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: go run ./cmd/compare [-quick] -out DIR [flags]\n\n"+
			"Builds the benchmark servers, upgrades each under identical load and compares\n"+
			"what the clients saw. Flags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, errUsage
		}
		return o, err // already printed with the usage
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q: every setting is a flag (see -h)", fs.Arg(0))
	}
	if o.Out == "" {
		return o, errors.New("-out DIR is required: the directory for results.json, results.md and timeline.png")
	}
	if o.Runs < 0 {
		return o, fmt.Errorf("-runs %d: want 1 or more (0: default)", o.Runs)
	}
	if o.Upgrades < 0 {
		return o, fmt.Errorf("-upgrades %d: want 1 or more (0: default)", o.Upgrades)
	}
	if o.Interval < 200*time.Millisecond {
		return o, fmt.Errorf("-interval %v: want at least 200ms, so that each upgrade can finish before the next", o.Interval)
	}
	if o.Baseline < 0 {
		return o, fmt.Errorf("-baseline %v: want a positive duration (0: default)", o.Baseline)
	}
	o.Warmup = 500 * time.Millisecond
	if o.Runs == 0 {
		o.Runs = pick(o.Quick, 1, 3)
	}
	if o.Upgrades == 0 {
		o.Upgrades = pick(o.Quick, 3, 10)
	}
	if o.Baseline == 0 {
		o.Baseline = pick(o.Quick, time.Second, 2*time.Second)
	}
	if cfgList == "" {
		cfgList = pick(o.Quick, quickConfigs, fullConfigs)
	}
	seen := map[string]bool{}
	for _, s := range strings.Split(cfgList, ",") {
		c, err := parseConfig(strings.TrimSpace(s))
		if err != nil {
			return o, fmt.Errorf("-configs: %w", err)
		}
		if seen[c.Name()] {
			return o, fmt.Errorf("-configs: %s given twice", c.Name())
		}
		seen[c.Name()] = true
		o.Configs = append(o.Configs, c)
	}
	if mechList == "" {
		o.Mechanisms = mechanisms
	} else {
		for _, s := range strings.Split(mechList, ",") {
			m, ok := findMechanism(strings.TrimSpace(s))
			if !ok {
				return o, fmt.Errorf("-mechanisms: unknown mechanism %q; choose from %s", s, mechanismNames())
			}
			if slices.Contains(o.Mechanisms, m) {
				return o, fmt.Errorf("-mechanisms: %s given twice", m.Name)
			}
			o.Mechanisms = append(o.Mechanisms, m)
		}
	}
	return o, nil
}

func pick[T any](quick bool, q, full T) T {
	if quick {
		return q
	}
	return full
}

func findMechanism(name string) (mechanism, bool) {
	for _, m := range mechanisms {
		if m.Name == name {
			return m, true
		}
	}
	return mechanism{}, false
}

func mechanismNames() string {
	var names []string
	for _, m := range mechanisms {
		names = append(names, m.Name)
	}
	return strings.Join(names, ", ")
}
