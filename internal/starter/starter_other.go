//go:build !unix

package starter

import (
	"os"
	"time"
)

// Process is a started program; on this platform none can be started.
type Process struct{}

// Start returns [ErrNotSupported] on this platform.
func Start(cfg Config) (*Process, error) { return nil, ErrNotSupported }

// PID returns 0 on this platform.
func (p *Process) PID() int { return 0 }

// Ready returns nil on this platform.
func (p *Process) Ready() <-chan struct{} { return nil }

// Exited returns nil on this platform.
func (p *Process) Exited() <-chan struct{} { return nil }

// State returns nil on this platform.
func (p *Process) State() *os.ProcessState { return nil }

// Settled returns nil on this platform.
func (p *Process) Settled() <-chan struct{} { return nil }

// Status returns "" on this platform.
func (p *Process) Status() string { return "" }

// StderrTail returns "" on this platform.
func (p *Process) StderrTail() string { return "" }

// Stop does nothing on this platform.
func (p *Process) Stop(grace time.Duration) {}

// Signal returns ErrNotSupported.
func (p *Process) Signal(sig os.Signal) error { return ErrNotSupported }

// CloseNotify does nothing on this platform.
func (p *Process) CloseNotify() {}

// ExecShim returns ErrNotSupported on this platform.
func ExecShim(args []string) error { return ErrNotSupported }
