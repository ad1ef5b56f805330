//go:build unix

package fdpass

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// helperEnv names the helper a re-executed test binary runs instead of
// the tests (see TestMain).
const helperEnv = "FDPASS_TEST_HELPER"

// helpers are the functions a re-executed test binary can run. Each
// returns the exit status.
var helpers = map[string]helper{}

type helper struct {
	run func() int
	// adopts marks a helper that calls Inherit first and then starts the
	// watchdog itself. A timer starts the runtime's poller, which takes
	// the lowest free descriptor numbers: started earlier, the watchdog
	// would fill the very gaps these helpers are meant to find.
	adopts bool
}

func TestMain(m *testing.M) {
	if name := os.Getenv(helperEnv); name != "" {
		os.Unsetenv(helperEnv)
		h, ok := helpers[name]
		if !ok {
			fmt.Fprintf(os.Stderr, "fdpass test helper: unknown helper %q\n", name)
			os.Exit(2)
		}
		if !h.adopts {
			startWatchdog(name)
		}
		os.Exit(h.run())
	}
	os.Exit(m.Run())
}

// startWatchdog kills a helper that hangs.
func startWatchdog(name string) {
	time.AfterFunc(20*time.Second, func() {
		fmt.Fprintf(os.Stderr, "fdpass test helper %q: watchdog fired after 20s\n", name)
		os.Exit(124)
	})
}

// helperCmd returns a command that re-executes the test binary to run
// the named helper, with none of the fdpass variables of this process.
func helperCmd(t *testing.T, name string, env ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = append(stripEnv(os.Environ()), helperEnv+"="+name, noRaceExitSleep())
	cmd.Env = append(cmd.Env, env...)
	return cmd
}

// noRaceExitSleep returns a GORACE setting that keeps a race-enabled
// helper from sleeping a second at exit (TSan's atexit_sleep_ms).
func noRaceExitSleep() string {
	return "GORACE=" + strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0")
}

// report is what a helper printed: one "key=value" per line.
type report map[string]string

func parseReport(out []byte) report {
	r := report{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			r[k] = v
		}
	}
	return r
}

// runHelper runs cmd to completion and returns its report; stderr is
// shown when the helper fails.
func runHelper(t *testing.T, cmd *exec.Cmd) report {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	require.NoError(t, err, "helper failed; stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	return parseReport(stdout.Bytes())
}

// put prints one report line from a helper.
func put(key string, format string, args ...any) {
	fmt.Printf("%s=%s\n", key, fmt.Sprintf(format, args...))
}

// describe renders an error so that the parent can assert on its kind.
func describe(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrMalformed):
		return fmt.Sprintf("Malformed: %v", err)
	case errors.Is(err, ErrNotFound):
		return fmt.Sprintf("NotFound: %v", err)
	}
	return fmt.Sprintf("error: %v", err)
}
