//go:build unix

package upgrade

import (
	"log/slog"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSignalStorm: 20 upgrade signals in quick succession start exactly
// one new generation; the rest are coalesced or refused, and logged.
func TestSignalStorm(t *testing.T) {
	logs := &syncBuffer{}
	u := newTestUpgrader(t, "ready", Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	require.NoError(t, u.Ready())
	u.HandleSignals()
	u.HandleSignals() // a second call does nothing
	for range 20 {
		require.NoError(t, syscall.Kill(syscall.Getpid(), syscall.SIGUSR2))
		time.Sleep(time.Millisecond)
	}
	select {
	case <-u.Exit():
	case <-time.After(10 * time.Second):
		t.Fatalf("no hand-over after a signal storm:\n%s", logs)
	}
	// Upgrade signals after the hand-over are ignored, not fatal: a late
	// SIGHUP from a deploy script must not kill a draining process.
	require.NoError(t, syscall.Kill(syscall.Getpid(), syscall.SIGHUP))
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "upgrade signal ignored") },
		10*time.Second, time.Millisecond)
	out := logs.String()
	assert.Equal(t, 1, strings.Count(out, "new generation started"), out)
	assert.Equal(t, 1, strings.Count(out, "new generation is live"), out)
}

// TestSignalsBeforeReady: HandleSignals called before Ready returns at
// once, and by the time Ready returns its handlers are in place: a signal
// sent at once upgrades (unhandled, SIGUSR2 would end the test binary).
func TestSignalsBeforeReady(t *testing.T) {
	u := newTestUpgrader(t, "ready", Options{})
	u.HandleSignals()
	require.NotNil(t, u.signalsSet, "installed beside the program's start")
	require.NoError(t, u.Ready())
	select {
	case <-u.signalsSet:
	default:
		t.Fatal("Ready returned before the handlers were in place")
	}
	require.NoError(t, syscall.Kill(syscall.Getpid(), syscall.SIGUSR2))
	select {
	case <-u.Exit():
	case <-time.After(10 * time.Second):
		t.Fatal("no hand-over after SIGUSR2")
	}
}

// TestStopSignalDuringUpgrade: SIGTERM is acted on at once, even while an
// upgrade waits for a child that hangs; the child is stopped and reaped.
func TestStopSignalDuringUpgrade(t *testing.T) {
	logs := &syncBuffer{}
	u := newTestUpgrader(t, "hang", Options{
		UpgradeTimeout: time.Minute,
		StopGrace:      time.Second,
		Logger:         slog.New(slog.NewTextHandler(logs, nil)),
	})
	require.NoError(t, u.Ready())
	u.HandleSignals()
	require.NoError(t, syscall.Kill(syscall.Getpid(), syscall.SIGHUP))
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "new generation started") },
		10*time.Second, time.Millisecond)
	start := time.Now()
	require.NoError(t, syscall.Kill(syscall.Getpid(), syscall.SIGTERM))
	select {
	case <-u.Exit():
	case <-time.After(10 * time.Second):
		t.Fatalf("SIGTERM did not stop the upgrader during an upgrade:\n%s", logs)
	}
	t.Logf("stopped %v after SIGTERM", time.Since(start))
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "upgrade failed") },
		10*time.Second, time.Millisecond, "the interrupted upgrade reports its end")
	assert.Contains(t, logs.String(), "was stopped before it was ready")
}
