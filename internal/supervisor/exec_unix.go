//go:build unix

package supervisor

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"

	"github.com/handoff-go/handoff/fdpass"
)

// Exec is the body of the shim named by [Config.Shim]: it sets LISTEN_PID
// to this process's PID and replaces this process with args[0] (looked up
// in PATH) and its arguments, so that the program finds LISTEN_PID equal
// to its own PID, as systemd-style programs check. It returns only on
// failure.
func Exec(args []string) error {
	if len(args) == 0 {
		return errors.New("supervisor: exec shim: no program given")
	}
	path, err := exec.LookPath(args[0])
	if err != nil {
		return fmt.Errorf("supervisor: cannot run the worker: %w", err)
	}
	env := append(dropVar(os.Environ(), fdpass.EnvListenPID), fdpass.EnvListenPID+"="+strconv.Itoa(os.Getpid()))
	err = syscall.Exec(path, args, env)
	return fmt.Errorf("supervisor: cannot run the worker: exec %s: %w", path, err)
}
