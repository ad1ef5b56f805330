//go:build unix

package wire_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/handoff-go/handoff/internal/wire"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// helperEnv names the helper a re-executed test binary runs instead of
// the tests (see TestMain). The helper finds its end of the channel at
// fd 3.
const helperEnv = "READINESS_TEST_HELPER"

var helpers = map[string]func(f *os.File) int{
	"ready": func(f *os.File) int {
		if err := wire.Ready(f); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0
	},
	"fail": func(f *os.File) int {
		wire.Fail(f, "open /etc/app.conf: no such file\nsecond line")
		return 1
	},
	"exit3": func(*os.File) int { return 3 },
	// waitclosed says ready, then waits for its starter to go away.
	"waitclosed": func(f *os.File) int {
		if err := wire.Ready(f); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Println("waiting")
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		fmt.Printf("gone: %v\n", wire.WaitClosed(ctx, f))
		return 0
	},
}

func TestMain(m *testing.M) {
	if name := os.Getenv(helperEnv); name != "" {
		h := helpers[name]
		if h == nil {
			fmt.Fprintf(os.Stderr, "readiness test helper: unknown helper %q\n", name)
			os.Exit(2)
		}
		time.AfterFunc(20*time.Second, func() {
			fmt.Fprintf(os.Stderr, "readiness test helper %q: watchdog fired after 20s\n", name)
			os.Exit(124)
		})
		os.Exit(h(os.NewFile(3, "readiness")))
	}
	os.Exit(m.Run())
}

// startHelper starts the named helper with the child end of a new pair
// at fd 3 and returns the parent end.
func startHelper(t *testing.T, name string) (*exec.Cmd, *os.File) {
	t.Helper()
	parent, child, err := wire.Pair()
	require.NoError(t, err)
	t.Cleanup(func() { parent.Close() })
	exe, err := os.Executable()
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = append(os.Environ(), helperEnv+"="+name,
		// Keep a race-enabled helper from sleeping a second at exit.
		"GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	cmd.ExtraFiles = []*os.File{child}
	cmd.Stderr = os.Stderr
	return cmd, parent
}

// start starts cmd and closes the caller's copy of the child end, as a
// starter must: otherwise the channel never reports the child's exit.
func start(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	require.NoError(t, cmd.Start())
	for _, f := range cmd.ExtraFiles {
		f.Close()
	}
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

func TestProcessReady(t *testing.T) {
	cmd, parent := startHelper(t, "ready")
	start(t, cmd)
	assert.NoError(t, wait(t, parent))
	assert.NoError(t, cmd.Wait())
}

func TestProcessFail(t *testing.T) {
	cmd, parent := startHelper(t, "fail")
	start(t, cmd)
	var failed *wire.FailedError
	require.ErrorAs(t, wait(t, parent), &failed)
	assert.Equal(t, "open /etc/app.conf: no such file second line", failed.Reason)
	assert.Equal(t, 1, exitCode(cmd.Wait()))
}

func TestProcessExitWithoutMessage(t *testing.T) {
	cmd, parent := startHelper(t, "exit3")
	start(t, cmd)
	assert.ErrorIs(t, wait(t, parent), wire.ErrClosed)
	assert.Equal(t, 3, exitCode(cmd.Wait()))
}

func TestProcessWaitClosed(t *testing.T) {
	cmd, parent := startHelper(t, "waitclosed")
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	start(t, cmd)
	require.NoError(t, wait(t, parent))
	out := bufio.NewReader(stdout)
	line, err := out.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "waiting\n", line)

	// The child stays put while the parent end is open...
	lines := make(chan string, 1)
	go func() {
		line, _ := out.ReadString('\n')
		lines <- line
	}()
	select {
	case line := <-lines:
		t.Fatalf("WaitClosed returned while the parent was alive: %q", line)
	case <-time.After(100 * time.Millisecond):
	}
	// ...and learns of the parent's exit, here simulated by closing the
	// parent end, which is what the kernel does when the parent exits.
	require.NoError(t, parent.Close())
	select {
	case line := <-lines:
		assert.Equal(t, "gone: <nil>\n", line)
	case <-time.After(10 * time.Second):
		t.Fatal("WaitClosed in the child did not return after the parent end closed")
	}
	assert.NoError(t, cmd.Wait())
}
