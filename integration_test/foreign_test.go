//go:build linux

package integration_test

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/handoff-go/handoff/internal/harness"
	"github.com/handoff-go/handoff/pidfile"
	"github.com/handoff-go/handoff/upgrade"
)

// TestForeignChildGoSystemd: a handoff server (this test process) hands
// its listener, under load, to a program built on go-systemd's activation
// package, which adopts it only if LISTEN_PID is its own PID and says
// ready with go-systemd's sd_notify. No request fails; the pidfile and the
// answers name the new program.
func TestForeignChildGoSystemd(t *testing.T) {
	bin := buildTestdata(t, "gosdserver")
	pidPath := filepath.Join(t.TempDir(), "app.pid")
	u, err := upgrade.New(upgrade.Options{
		PIDFile: pidPath, Path: bin, Args: []string{bin}, ForeignChild: true,
		IdleGrace: 200 * time.Millisecond,
	})
	require.NoError(t, err)
	defer u.Stop()
	ln, err := u.Listen(t.Context(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, u.Ready())
	served := make(chan error, 1)
	go func() {
		served <- u.Serve(&http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, "handoff")
		})}, ln)
	}()
	l := startLoad(t, addr, 16)
	time.Sleep(300 * time.Millisecond)

	require.NoError(t, u.Upgrade(t.Context()))
	child, err := pidfile.Read(pidPath)
	require.NoError(t, err)
	defer syscall.Kill(child, syscall.SIGTERM)
	select {
	case err := <-served:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("the handoff server did not drain")
	}
	time.Sleep(300 * time.Millisecond)
	requests, failed := l.stop(t)
	assert.Positive(t, requests)
	assert.Zero(t, failed, "failed requests across the hand-over to the go-systemd program")

	body, err := (&server{t: t, addr: addr}).get()
	require.NoError(t, err)
	assert.Equal(t, fmt.Sprintf("gosd pid=%d", child), body)
	require.NoError(t, syscall.Kill(child, syscall.SIGTERM))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	require.NoError(t, harness.WaitGone(ctx, child))
}
