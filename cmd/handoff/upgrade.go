package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/handoff-go/handoff/internal/control"
)

const upgradeUsage = `usage: handoff upgrade -control PATH [-wait-commit] [-timeout D] [-json]
       handoff upgrade -pidfile FILE [-signal SIGUSR2] [-timeout D] [-json]

Upgrades the server and waits for the verdict. With -control it asks the
server's control socket and gets the verdict with its reason; with -pidfile
it signals the process the pidfile names and judges by what it sees. With
-wait-commit (and -control) it also waits until the old generation's
rollback window (Options.RollbackWindow) has passed without a rollback.

exit status:
  0  upgraded: the new generation serves (its PID is printed); with
     -wait-commit, its rollback window passed too
  1  the upgrade failed, or was refused, and the old process still serves
     (the reason is printed; by -pidfile, only that the new one exited);
     with -wait-commit: or it was rolled back (the reason is printed)
  2  usage error, or the server could not be reached
  3  no verdict within -timeout: the upgrade may still complete
     (handoff status -control, or the pidfile, tells later)

options:
`

// upgradeCmd asks a server to upgrade and reports the verdict.
func upgradeCmd(args []string) int {
	fs := flag.NewFlagSet("handoff upgrade", flag.ContinueOnError)
	ctl := fs.String("control", "", "control socket of the server (the verdict comes with the reason)")
	pidPath := fs.String("pidfile", "", "pidfile of a server without a control socket (judged by observation)")
	sig := fs.String("signal", "SIGUSR2", "with -pidfile: the upgrade signal (SIGHUP, SIGUSR1, SIGUSR2)")
	timeout := fs.Duration("timeout", 2*time.Minute, "how long to wait for the verdict")
	asJSON := fs.Bool("json", false, "print the verdict as JSON on stdout instead of the new PID")
	waitCommit := fs.Bool("wait-commit", false, "with -control: wait until the rollback window has passed; exit 1 if the upgrade was rolled back")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), upgradeUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 || (*ctl == "") == (*pidPath == "") {
		fmt.Fprintln(os.Stderr, "handoff upgrade: give exactly one of -control or -pidfile")
		fs.Usage()
		return exitUsage
	}
	if *timeout <= 0 {
		fmt.Fprintln(os.Stderr, "handoff upgrade: -timeout must be a positive duration")
		return exitUsage
	}
	if *waitCommit && *ctl == "" {
		fmt.Fprintln(os.Stderr, "handoff upgrade: -wait-commit needs -control: only the server can say whether it rolled back")
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	var res control.UpgradeResult
	var code int
	if *pidPath != "" {
		res, code = upgradeBySignal(ctx, *pidPath, *sig, *timeout)
	} else {
		res, code = upgradeByControl(ctx, *ctl, *timeout)
		if code == exitOK && *waitCommit {
			code = waitCommitted(ctx, *ctl, &res, *timeout)
		}
	}
	if code == exitUsage {
		return code
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		enc.Encode(res)
	} else if code == exitOK {
		fmt.Printf("%d\n", res.NewPID)
	}
	return code
}

// upgradeByControl asks the control socket at path for an upgrade.
func upgradeByControl(ctx context.Context, path string, timeout time.Duration) (control.UpgradeResult, int) {
	resp, err := control.Do(ctx, path, control.Request{Cmd: control.CmdUpgrade})
	switch {
	case errors.Is(err, control.ErrNoAnswer):
		fmt.Fprintf(os.Stderr, "handoff upgrade: no verdict within %v; the upgrade may still complete: ask `handoff status -control %s`\n", timeout, path)
		return control.UpgradeResult{Error: err.Error()}, exitNoVerdict
	case err != nil:
		fmt.Fprintln(os.Stderr, "handoff upgrade:", err)
		return control.UpgradeResult{}, exitUsage
	case resp.Error != "" || resp.Upgrade == nil:
		fmt.Fprintln(os.Stderr, "handoff upgrade: the server refused the request:", resp.Error)
		return control.UpgradeResult{}, exitUsage
	}
	r := *resp.Upgrade
	switch {
	case r.OK:
		fmt.Fprintf(os.Stderr, "handoff upgrade: PID %d took over from PID %d in %.1f ms\n", r.NewPID, r.OldPID, r.TookMS)
		return r, exitOK
	case r.Refused:
		fmt.Fprintf(os.Stderr, "handoff upgrade: refused by PID %d: nothing was started\n  reason: %s\n", r.OldPID, r.Error)
		return r, exitFailed
	}
	describeFailure(os.Stderr, &r)
	return r, exitFailed
}

// describeFailure prints why an upgrade failed.
func describeFailure(w io.Writer, r *control.UpgradeResult) {
	fmt.Fprintf(w, "handoff upgrade: failed; PID %d still serves\n", r.OldPID)
	if r.Stage != "" {
		fmt.Fprintf(w, "  stage:  %s\n", r.Stage)
	}
	if r.NewPID != 0 {
		fmt.Fprintf(w, "  child:  PID %d%s\n", r.NewPID, exitDesc(r))
	}
	fmt.Fprintf(w, "  reason: %s\n", r.Error)
	if tail := strings.TrimSpace(r.Stderr); tail != "" {
		fmt.Fprintf(w, "  stderr of the new build (tail):\n    %s\n", strings.ReplaceAll(tail, "\n", "\n    "))
	}
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
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: handoff status -control PATH [-json] [-timeout D]\n\nPrints what the server says about itself: PID, version, generation,\nlisteners, draining generations, the last upgrade. Exit status 0, or 2\nif the server could not be reached.\n\noptions:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if *ctl == "" || fs.NArg() > 0 {
		fs.Usage()
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

// waitCommitted follows the server after an upgrade until the old
// generation's rollback window has passed (exitOK) or it rolled back
// (exitFailed; res.Error says why), asking its status every 100ms. The
// control socket stays served throughout: by the new generation, or by
// the build a rollback started.
func waitCommitted(ctx context.Context, path string, res *control.UpgradeResult, timeout time.Duration) int {
	announced := false
	var lastErr error
	for {
		resp, err := control.Do(ctx, path, control.Request{Cmd: control.CmdStatus})
		if err == nil && resp.Status == nil {
			err = errors.New("the server refused the request: " + resp.Error)
		}
		if err == nil {
			st := resp.Status
			switch {
			case st.PID != res.NewPID && st.RolledBack != "":
				res.OK, res.Error = false, "rolled back: "+st.RolledBack
				fmt.Fprintf(os.Stderr, "handoff upgrade: ROLLED BACK: PID %d serves the previous build again\n  reason: %s\n", st.PID, st.RolledBack)
				return exitFailed
			case st.PID != res.NewPID:
				fmt.Fprintf(os.Stderr, "handoff upgrade: PID %d serves now, not %d: another upgrade replaced it before its window passed\n", st.PID, res.NewPID)
				return exitNoVerdict
			case st.Parked == nil:
				fmt.Fprintf(os.Stderr, "handoff upgrade: committed: PID %d serves, and no previous generation waits to take back over\n", st.PID)
				return exitOK
			case !announced:
				fmt.Fprintf(os.Stderr, "handoff upgrade: waiting for the rollback window: PID %d parked for %.1fs more\n", st.Parked.PID, st.Parked.LeftMS/1000)
				announced = true
			}
		} else {
			lastErr = err // between two processes (a rollback starting): ask again
		}
		select {
		case <-ctx.Done():
			fmt.Fprintf(os.Stderr, "handoff upgrade: no commit within %v (last error: %v); ask `handoff status -control %s`\n", timeout, lastErr, path)
			return exitNoVerdict
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// rollbackCmd asks the live generation to be rolled back to the parked one.
func rollbackCmd(args []string) int {
	fs := flag.NewFlagSet("handoff rollback", flag.ContinueOnError)
	ctl := fs.String("control", "", "control socket of the server")
	reason := fs.String("reason", "", "why, for the server's log")
	timeout := fs.Duration("timeout", 2*time.Minute, "how long to wait for the verdict")
	asJSON := fs.Bool("json", false, "print the verdict as JSON on stdout")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `usage: handoff rollback -control PATH [-reason TEXT] [-timeout D] [-json]

Rolls the server back to the previous generation while it waits in its
rollback window (Options.RollbackWindow): that generation starts its build
again with the sockets, and the live one drains.

exit status:
  0  rolled back: the previous build serves again
  1  nothing to roll back to (no window, or it passed), or the rollback
     failed and the live generation serves on (the reason is printed)
  2  usage error, or the server could not be reached
  3  no verdict within -timeout

options:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if *ctl == "" || fs.NArg() > 0 || *timeout <= 0 {
		fs.Usage()
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	resp, err := control.Do(ctx, *ctl, control.Request{Cmd: control.CmdRollback, Reason: *reason})
	switch {
	case errors.Is(err, control.ErrNoAnswer):
		fmt.Fprintf(os.Stderr, "handoff rollback: no verdict within %v: ask `handoff status -control %s`\n", *timeout, *ctl)
		return exitNoVerdict
	case err != nil:
		fmt.Fprintln(os.Stderr, "handoff rollback:", err)
		return exitUsage
	case resp.Error != "" || resp.Rollback == nil:
		fmt.Fprintln(os.Stderr, "handoff rollback: the server refused the request:", resp.Error)
		return exitUsage
	}
	r := resp.Rollback
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		enc.Encode(r)
	}
	if !r.OK {
		fmt.Fprintf(os.Stderr, "handoff rollback: not rolled back; PID %d serves on\n  reason: %s\n", r.PID, r.Error)
		return exitFailed
	}
	fmt.Fprintf(os.Stderr, "handoff rollback: rolled back: the previous build serves again; PID %d drains\n", r.PID)
	return exitOK
}
