// Command handoff drives handoff servers from deploy scripts, and
// supervises programs in any language with a stable PID.
//
//	handoff upgrade -control PATH [-timeout D] [-json]   upgrade and wait for the verdict
//	handoff upgrade -control PATH -wait-commit           ... and for its rollback window to pass
//	handoff upgrade -pidfile F [-timeout D] [-json]      the same by signal and observation
//	handoff rollback -control PATH [-reason TEXT]        roll back within the rollback window
//	handoff status -control PATH [-json]                 what the server says about itself
//	handoff run [options] -- PROGRAM ARGS...             supervise PROGRAM with a stable PID
//	handoff version                                      this build's version
//
// Exit status of upgrade: 0 upgraded (the new PID is printed), and with
// -wait-commit its rollback window passed; 1 the upgrade failed or was
// refused, and the old process still serves, or with -wait-commit it was
// rolled back; 2 a usage error, or the server could not be reached; 3 no
// verdict within -timeout (the upgrade may still complete).
package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
)

// Exit codes.
const (
	exitOK        = 0
	exitFailed    = 1 // the upgrade failed or was refused; the old process still serves
	exitUsage     = 2 // bad usage, or the process cannot be reached
	exitNoVerdict = 3 // no verdict within -timeout: the upgrade may still complete
)

// version is set at build time with -ldflags "-X main.version=v1.2.3";
// otherwise the module version Go recorded, if any.
var version = ""

const usage = `usage:
  handoff upgrade -control PATH [-wait-commit] [-timeout D] [-json]
  handoff upgrade -pidfile FILE [-signal SIGUSR2] [-timeout D] [-json]
  handoff rollback -control PATH [-reason TEXT] [-timeout D] [-json]
  handoff status -control PATH [-json]
  handoff run -listen tcp:ADDR [-listen unix:PATH] [-listen udp:ADDR] [options] -- PROGRAM [ARGS...]
  handoff version

exit status of upgrade: 0 upgraded (the new PID is printed; with
-wait-commit, and its rollback window passed); 1 the upgrade failed or was
refused, and the old process still serves (with -wait-commit: or it was
rolled back); 2 usage error or the process could not be reached; 3 no
verdict within -timeout (the upgrade may still complete). Run
"handoff COMMAND -h" for a command's options.
`

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) > 0 && args[0] == shimArg {
		return execShim(args[1:]) // only returns on failure
	}
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "upgrade":
		return upgradeCmd(args[1:])
	case "status":
		return statusCmd(args[1:])
	case "rollback":
		return rollbackCmd(args[1:])
	case "run":
		return runCmd(args[1:])
	case "version":
		fmt.Printf("handoff %s (%s %s/%s)\n", buildVersion(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return exitOK
	case "-h", "-help", "--help", "help":
		fmt.Print(usage)
		return exitOK
	}
	fmt.Fprintf(os.Stderr, "handoff: unknown command %q\n%s", args[0], usage)
	return exitUsage
}

// buildVersion is the version this binary was built as.
func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version // "(devel)" for a build from a checkout
	}
	return "(devel)"
}
