//go:build unix

// Package harness builds handoff's example servers and drives them from
// outside, as a deploy script would: start, signal, watch the pidfile, and
// check that old generations are really gone. The demo and the
// integration tests share it.
package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/handoff-go/handoff/pidfile"
)

// ModuleRoot returns the directory holding handoff's go.mod.
func ModuleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("harness: go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("harness: not inside the handoff module: run from its checkout")
	}
	return filepath.Dir(gomod), nil
}

// Build compiles the main package pkg (relative to the module root, e.g.
// "./examples/httpserver") with main.version set to version, into out.
// vars are more "name=value" settings of main's string variables.
func Build(ctx context.Context, pkg, version, out string, vars ...string) error {
	root, err := ModuleRoot()
	if err != nil {
		return err
	}
	ldflags := "-X main.version=" + version
	for _, v := range vars {
		ldflags += " -X 'main." + v + "'" // quoted: values may hold spaces
	}
	cmd := exec.CommandContext(ctx, "go", buildArgs(ldflags, out, pkg)...)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("harness: go build %s: %w\n%s", pkg, err, b)
	}
	return nil
}

// buildArgs are the go command's arguments for Build and BuildIn: with
// -race when this test binary is race-built.
func buildArgs(ldflags, out, pkg string) []string {
	args := []string{"build", "-ldflags", ldflags, "-o", out}
	if raceBuild {
		args = append(args, "-race")
	}
	return append(args, pkg)
}

// RaceReport is what a race-built program writes when it finds a race.
const RaceReport = "WARNING: DATA RACE"

// BuildIn is [Build] for a main package of another module inside the
// checkout, one with a go.mod of its own (examples/grpcserver keeps gRPC
// out of handoff's dependencies that way): moduleDir is that module's
// directory relative to handoff's root, and pkg is relative to moduleDir
// (e.g. "./cmd/grpcload"). The go command downloads the module's
// dependencies on first use.
func BuildIn(ctx context.Context, moduleDir, pkg, version, out string, vars ...string) error {
	root, err := ModuleRoot()
	if err != nil {
		return err
	}
	ldflags := "-X main.version=" + version
	for _, v := range vars {
		ldflags += " -X 'main." + v + "'"
	}
	cmd := exec.CommandContext(ctx, "go", buildArgs(ldflags, out, pkg)...)
	cmd.Dir = filepath.Join(root, moduleDir)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("harness: go build %s in %s: %w\n%s", pkg, moduleDir, err, b)
	}
	return nil
}

// Install puts the binary src at dst atomically (copy beside dst, then
// rename), the way a deploy replaces a running program's file.
func Install(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	tmp := dst + ".tmp"
	if err := os.WriteFile(tmp, b, 0o755); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

// FreePort returns a loopback TCP address that was free a moment ago.
func FreePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// Server is a server process started from outside, with all its later
// generations in one process group.
type Server struct {
	Cmd     *exec.Cmd
	PIDFile string
	LogPath string // every generation's stderr and stdout

	exited chan struct{} // closed when the first generation has been reaped
}

// Start runs bin with args in its own process group, output to logPath.
// The pidfile is expected to appear once the server is ready.
func Start(bin, pidFile, logPath string, args ...string) (*Server, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// A race-built program sleeps a second at exit unless told not to:
	// each old generation would linger that long.
	cmd.Env = append(os.Environ(), "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	// Setpgid, not Setsid: with autogroup scheduling a new session gets its
	// own CPU share and would skew measurements.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &Server{Cmd: cmd, PIDFile: pidFile, LogPath: logPath, exited: make(chan struct{})}
	go func() {
		cmd.Wait() // reap the first generation whenever it exits
		close(s.exited)
	}()
	return s, nil
}

// WaitFirst waits for the first generation to exit and returns its status.
func (s *Server) WaitFirst(ctx context.Context) (*os.ProcessState, error) {
	select {
	case <-s.exited:
		return s.Cmd.ProcessState, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// WaitPID waits until the pidfile names a live process other than old
// (0: any) and returns it.
func (s *Server) WaitPID(ctx context.Context, old int) (int, error) {
	for {
		pid, err := pidfile.Read(s.PIDFile)
		if err == nil && pid != old && Alive(pid) {
			return pid, nil
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("harness: pidfile %s still names %d (last error: %v): %w\n%s", s.PIDFile, old, err, ctx.Err(), s.Log())
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// Upgrade signals the process the pidfile names with sig and waits until
// the pidfile names a new process and the old one is gone. It returns the
// new PID and how long the old process took to be gone after the signal.
func (s *Server) Upgrade(ctx context.Context, sig syscall.Signal) (newPID int, took time.Duration, err error) {
	old, err := pidfile.Read(s.PIDFile)
	if err != nil {
		return 0, 0, err
	}
	start := time.Now()
	if err := syscall.Kill(old, sig); err != nil {
		return 0, 0, fmt.Errorf("harness: kill -%d %d: %w", sig, old, err)
	}
	newPID, err = s.WaitPID(ctx, old)
	if err != nil {
		return 0, 0, err
	}
	if err := WaitGone(ctx, old); err != nil {
		return newPID, 0, err
	}
	return newPID, time.Since(start), nil
}

// Stop sends SIGTERM to the live generation, waits for it to be gone, then
// kills anything left in the process group.
func (s *Server) Stop(ctx context.Context) error {
	defer syscall.Kill(-s.Cmd.Process.Pid, syscall.SIGKILL)
	pid, err := pidfile.Read(s.PIDFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil // stopped already: a final stop removes the pidfile
	}
	if err != nil {
		return err
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return err
	}
	return WaitGone(ctx, pid)
}

// Log returns what the server's generations have written so far.
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.LogPath)
	return string(b)
}

// Alive reports whether pid is a process that has not exited. A zombie
// (exited, not yet reaped by its new parent) counts as gone: on some
// machines init reaps orphans only every few seconds.
func Alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return false
		}
		return syscall.Kill(pid, 0) == nil // no /proc: best effort
	}
	// The state follows the command name in parentheses, which may
	// itself contain spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return true
	}
	st := b[i+2]
	return st != 'Z' && st != 'X'
}

// WaitGone waits until pid is gone (see Alive).
func WaitGone(ctx context.Context, pid int) error {
	for Alive(pid) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("harness: process %d still alive: %w", pid, ctx.Err())
		case <-time.After(2 * time.Millisecond):
		}
	}
	return nil
}

// Group returns the live (not zombie) processes in the process group
// pgid, read from /proc.
func Group(pgid int) ([]int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		// After the name: state ppid pgrp ...
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 3 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		if g, err := strconv.Atoi(f[2]); err == nil && g == pgid {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// FDs returns the number of open descriptors of pid.
func FDs(pid int) (int, error) {
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	return len(ents), err
}
