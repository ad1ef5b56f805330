// Command handoff drives handoff servers from deploy scripts, and
// supervises programs in any language with a stable PID.
//
//	handoff upgrade -control PATH [-timeout D]   upgrade and wait for the verdict
//	handoff upgrade -pidfile F [-timeout D]      the same by signal and observation
//	handoff status -control PATH [-json]         what the server says about itself
//	handoff run [options] -- PROGRAM ARGS...     supervise PROGRAM with a stable PID
//
// Exit status: 0 success; 1 the upgrade failed and the old process still
// serves; 2 usage errors or an unreachable process.
package main

import (
	"fmt"
	"os"
)

// Exit codes.
const (
	exitOK     = 0
	exitFailed = 1 // the upgrade failed; the old process still serves
	exitUsage  = 2 // bad usage, or the process cannot be reached
)

const usage = `usage:
  handoff upgrade -control PATH [-timeout D]
  handoff upgrade -pidfile FILE [-signal SIGUSR2] [-timeout D]
  handoff status -control PATH [-json]
  handoff run -listen tcp:ADDR [-listen unix:PATH] [-listen udp:ADDR] [options] -- PROGRAM [ARGS...]

exit status: 0 success; 1 the upgrade failed and the old process still serves;
2 usage error or the process could not be reached.
Run "handoff COMMAND -h" for a command's options.
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
	case "run":
		return runCmd(args[1:])
	case "-h", "-help", "--help", "help":
		fmt.Print(usage)
		return exitOK
	}
	fmt.Fprintf(os.Stderr, "handoff: unknown command %q\n%s", args[0], usage)
	return exitUsage
}
