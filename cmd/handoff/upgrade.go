package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/handoff-go/handoff/internal/control"
)

// upgradeCmd asks a server to upgrade and reports the verdict.
func upgradeCmd(args []string) int {
	fs := flag.NewFlagSet("handoff upgrade", flag.ContinueOnError)
	ctl := fs.String("control", "", "control socket of the server (the verdict comes with the reason)")
	pidPath := fs.String("pidfile", "", "pidfile of a server without a control socket (judged by observation)")
	sig := fs.String("signal", "SIGUSR2", "with -pidfile: the upgrade signal (SIGHUP, SIGUSR1, SIGUSR2)")
	timeout := fs.Duration("timeout", 2*time.Minute, "how long to wait for the verdict")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `usage: handoff upgrade -control PATH [-timeout D]
       handoff upgrade -pidfile FILE [-signal SIGUSR2] [-timeout D]

Upgrades the server and waits for the verdict. Exit status: 0 the new
generation serves (its PID is printed); 1 the upgrade failed and the old
process still serves (the reason is printed); 2 usage error, or the
server could not be reached.

`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 || (*ctl == "") == (*pidPath == "") {
		fmt.Fprintln(os.Stderr, "handoff upgrade: give exactly one of -control or -pidfile")
		fs.Usage()
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if *pidPath != "" {
		return upgradeBySignal(ctx, *pidPath, *sig, *timeout)
	}
	resp, err := control.Do(ctx, *ctl, control.Request{Cmd: control.CmdUpgrade})
	if err != nil {
		fmt.Fprintln(os.Stderr, "handoff upgrade:", err)
		return exitUsage
	}
	if resp.Error != "" || resp.Upgrade == nil {
		fmt.Fprintln(os.Stderr, "handoff upgrade: the server refused the request:", resp.Error)
		return exitUsage
	}
	r := resp.Upgrade
	if r.OK {
		fmt.Printf("%d\n", r.NewPID)
		fmt.Fprintf(os.Stderr, "handoff upgrade: PID %d took over from PID %d in %.1f ms\n", r.NewPID, r.OldPID, r.TookMS)
		return exitOK
	}
	fmt.Fprintf(os.Stderr, "handoff upgrade: failed; PID %d still serves\n", r.OldPID)
	if r.Stage != "" {
		fmt.Fprintf(os.Stderr, "  stage:  %s\n", r.Stage)
	}
	if r.NewPID != 0 {
		fmt.Fprintf(os.Stderr, "  child:  PID %d%s\n", r.NewPID, exitDesc(r))
	}
	fmt.Fprintf(os.Stderr, "  reason: %s\n", r.Error)
	if tail := strings.TrimSpace(r.Stderr); tail != "" {
		fmt.Fprintf(os.Stderr, "  stderr of the new build (tail):\n    %s\n", strings.ReplaceAll(tail, "\n", "\n    "))
	}
	return exitFailed
}

func exitDesc(r *control.UpgradeResult) string {
	switch {
	case r.Signal != "":
		return ", ended by signal " + r.Signal
	case r.ExitCode != nil:
		return fmt.Sprintf(", exit status %d", *r.ExitCode)
	}
	return ""
}

// statusCmd prints what the server says about itself.
func statusCmd(args []string) int {
	fs := flag.NewFlagSet("handoff status", flag.ContinueOnError)
	ctl := fs.String("control", "", "control socket of the server")
	asJSON := fs.Bool("json", false, "print the status as JSON")
	timeout := fs.Duration("timeout", 10*time.Second, "how long to wait for the answer")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *ctl == "" || fs.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: handoff status -control PATH [-json]")
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	resp, err := control.Do(ctx, *ctl, control.Request{Cmd: control.CmdStatus})
	if err == nil && (resp.Error != "" || resp.Status == nil) {
		err = errors.New("the server refused the request: " + resp.Error)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "handoff status:", err)
		return exitUsage
	}
	printStatus(os.Stdout, resp.Status, *asJSON)
	return exitOK
}
