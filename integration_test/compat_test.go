//go:build linux

package integration_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/handoff-go/handoff/internal/harness"
	"github.com/handoff-go/handoff/internal/loadgen"
)

// previousRelease is the commit of the build this tree must hand over to
// and from. Each release keeps this promise with the one before it: its
// builds upgrade into and out of that release's builds, under load, losing
// nothing. So once a release is made, the development that follows sets
// this to that release's commit: v0.1.0's since it was made (see
// .ci/api-baseline). v0.1.0 kept it with aa23f8a, the last build before
// the v0.1.0 API.
const previousRelease = "61985b28acc844490782d6766e68075fb5527a33"

// oldBuild is examples/httpserver built from previousRelease, once per
// test binary.
var oldBuild struct {
	once sync.Once
	path string
	err  error
}

// previousHTTPServer returns examples/httpserver of previousRelease, built
// with main.version=old. It is built on first use beside TestMain's builds,
// so it is removed with them.
func previousHTTPServer(t *testing.T) string {
	t.Helper()
	oldBuild.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		out := filepath.Join(filepath.Dir(bins.v1), "httpserver-"+previousRelease[:7])
		oldBuild.err = buildAtCommit(ctx, previousRelease, "./examples/httpserver", "old", out)
		oldBuild.path = out
	})
	require.NoError(t, oldBuild.err)
	return oldBuild.path
}

// buildAtCommit exports commit's tree from the repository's history into a
// temp dir and builds the main package pkg of handoff's module there (pkg
// relative to the module root), with main.version set to version, into
// out. Its dependencies come from the module cache or proxy.
func buildAtCommit(ctx context.Context, commit, pkg, version, out string) error {
	git := func(dir string, args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = dir
		b, err := cmd.CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(b)))
		}
		return strings.TrimSpace(string(b)), nil
	}
	needHistory := func(why string) error {
		return fmt.Errorf("this test builds the previous release, commit %s, from the repository's history and upgrades "+
			"across versions, so it needs that history: %s. Run it from a git clone with full history "+
			"(in a shallow clone: git fetch --unshallow)", commit, why)
	}

	top, err := git(".", "rev-parse", "--show-toplevel")
	if err != nil {
		return needHistory(fmt.Sprintf("not inside a git repository (%v)", err))
	}
	if _, err := git(top, "cat-file", "-e", commit+"^{commit}"); err != nil {
		why := "the commit is not in " + top
		if shallow, _ := git(top, "rev-parse", "--is-shallow-repository"); shallow == "true" {
			why += ", a shallow clone"
		}
		return needHistory(why)
	}
	// The module may sit below the repository's top directory.
	modRoot, err := harness.ModuleRoot()
	if err != nil {
		return err
	}
	rel, err := filepath.Rel(top, modRoot)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return fmt.Errorf("module root %s is not inside the repository %s", modRoot, top)
	}

	tmp, err := os.MkdirTemp("", "handoff-"+commit[:7]+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	tarball := filepath.Join(tmp, "tree.tar")
	if _, err := git(top, "archive", "--format=tar", "-o", tarball, commit); err != nil {
		return err
	}
	tree := filepath.Join(tmp, "tree")
	if err := os.Mkdir(tree, 0o755); err != nil {
		return err
	}
	if b, err := exec.CommandContext(ctx, "tar", "-xf", tarball, "-C", tree).CombinedOutput(); err != nil {
		return fmt.Errorf("tar -x of commit %s: %w: %s", commit, err, b)
	}

	cmd := exec.CommandContext(ctx, "go", "build", "-ldflags", "-X main.version="+version, "-o", out, pkg)
	cmd.Dir = filepath.Join(tree, rel)
	// -mod=mod: the old go.sum may lack what this Go version wants listed.
	// GOWORK=off: a go.work around the checkout must not pull in today's tree.
	cmd.Env = append(os.Environ(), "GOFLAGS="+strings.TrimSpace(os.Getenv("GOFLAGS")+" -mod=mod"), "GOWORK=off")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s at commit %s: %w\n%s", pkg, commit, err, b)
	}
	return nil
}

// hasFlag reports whether the program bin lists -name in its -h usage.
func hasFlag(bin, name string) bool {
	b, _ := exec.Command(bin, "-h").CombinedOutput() // exits 0 or 2 after the usage
	return strings.Contains(string(b), "  -"+name+" ") || strings.Contains(string(b), "  -"+name+"\n")
}

// TestUpgradeAcrossVersions starts examples/httpserver built from the
// previous release and, under load, upgrades it to this tree's build and
// back again, three rounds: each hand-over between versions, by signal and
// (if the old build has one) through the control socket, must lose no
// request and leave exactly the new generation alive.
func TestUpgradeAcrossVersions(t *testing.T) {
	old := previousHTTPServer(t)
	withControl := hasFlag(old, "control")
	sock := filepath.Join(t.TempDir(), "app.sock")
	args := []string{"-drain-timeout", "10s"}
	if withControl {
		args = append(args, "-control", sock)
		handoffCLI(t) // built now, not during the first upgrade
	} else {
		t.Logf("the build of %s has no -control flag: every upgrade goes by signal", previousRelease[:7])
	}
	s := startServer(t, old, "", args...)
	pid, err := s.WaitPID(t.Context(), 0)
	require.NoError(t, err)
	s.requireAnswer("old", pid)
	s.requireOneGeneration(pid)

	keep, err := loadgen.Start(loadgen.Config{Addr: s.addr, Clients: *clientsFlag, Mode: loadgen.KeepAlive})
	require.NoError(t, err)
	fresh, err := loadgen.Start(loadgen.Config{Addr: s.addr, Clients: *clientsFlag, Mode: loadgen.NewConn})
	require.NoError(t, err)
	defer keep.Stop()
	defer fresh.Stop()

	const byControl = "control socket" // `handoff upgrade -control`
	signals := map[string]syscall.Signal{"SIGHUP": syscall.SIGHUP, "SIGUSR2": syscall.SIGUSR2}
	plan := []struct {
		version, bin string
		by           string // byControl or a key of signals
	}{
		// This tree's CLI asks the old server, in the old build's
		// control protocol, to start this tree's build.
		{"v2", bins.v2, byControl},
		{"old", old, "SIGHUP"},
		{"v2", bins.v2, "SIGUSR2"},
		// This tree's server reports its verdict on an old child.
		{"old", old, byControl},
		// The old server holds a control socket handed to it by this
		// tree's build.
		{"v2", bins.v2, byControl},
		{"old", old, "SIGUSR2"},
	}
	const answersPerGeneration = 200 // of each kind of client
	from := "old"
	var tooks []time.Duration
	for i, step := range plan {
		if step.by == byControl && !withControl {
			step.by = "SIGUSR2"
		}
		var newPID int
		var took time.Duration
		if step.by == byControl {
			newPID, took = s.upgradeByControl(step.bin, sock, pid)
		} else {
			newPID, took = s.upgrade(step.bin, signals[step.by])
		}
		t.Logf("upgrade %d/%d: %s pid %d -> %s pid %d by %s: old process gone after %v",
			i+1, len(plan), from, pid, step.version, newPID, step.by, took)
		tooks = append(tooks, took)
		require.NotEqual(t, pid, newPID)
		s.requireAnswer(step.version, newPID)
		s.requireOneGeneration(newPID)
		// Both kinds of client must be served by the new generation for a
		// while before the next hand-over, so that each one hands over
		// under load.
		want := fmt.Sprintf("version=%s pid=%d", step.version, newPID)
		for _, l := range []*loadgen.Load{keep, fresh} {
			require.Eventually(t, func() bool { return l.Snapshot().Bodies[want] >= answersPerGeneration },
				10*time.Second, 2*time.Millisecond, "load clients got fewer than %d answers from %s", answersPerGeneration, want)
		}
		pid, from = newPID, step.version
	}

	ks, fs := keep.Stop(), fresh.Stop()
	t.Logf("keep-alive: %v", ks)
	t.Logf("new-conn:   %v", fs)
	byVersion := map[string]int64{}
	for _, st := range []loadgen.Stats{ks, fs} {
		for body, n := range st.Bodies {
			v, _, _ := strings.Cut(strings.TrimPrefix(body, "version="), " ")
			byVersion[v] += n
		}
	}
	slices.Sort(tooks)
	t.Logf("%d upgrades between %s and this tree; requests %d, failed %d; answered by old=%d v2=%d; old process gone after: p50 %v, max %v",
		len(plan), previousRelease[:7], ks.Requests+fs.Requests, ks.Failed+fs.Failed, byVersion["old"], byVersion["v2"],
		tooks[len(tooks)/2], tooks[len(tooks)-1])
	assert.Zero(t, ks.Failed, "failed keep-alive requests: %v", ks.Errors)
	assert.Zero(t, fs.Failed, "failed new-connection requests: %v", fs.Errors)
	assert.Positive(t, byVersion["old"], "requests answered by the old build")
	assert.Positive(t, byVersion["v2"], "requests answered by this tree's build")
}

// upgradeByControl installs bin over the server's binary and upgrades with
// `handoff upgrade -control sock`, built from this tree. The command must
// exit 0 and print the new PID, which the pidfile must name; it returns
// that PID once the old generation, old, is gone, and how long that took.
func (s *server) upgradeByControl(bin, sock string, old int) (int, time.Duration) {
	t := s.t
	t.Helper()
	require.NoError(t, harness.Install(bin, s.bin))
	start := time.Now()
	code, stdout, stderr := runCLI(t, nil, "upgrade", "-control", sock)
	require.Equal(t, 0, code, "handoff upgrade -control, PID %d serving: stdout %q, stderr %q", old, stdout, stderr)
	newPID, err := strconv.Atoi(strings.TrimSpace(stdout))
	require.NoError(t, err, "handoff upgrade -control must print the new PID; it printed %q", stdout)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = harness.WaitGone(ctx, old)
	require.NoError(t, err)
	took := time.Since(start)
	got, err := s.WaitPID(ctx, 0)
	require.NoError(t, err)
	require.Equal(t, newPID, got, "the printed PID is the one in the pidfile")
	return newPID, took
}
