//go:build !unix

package supervisor

import (
	"context"
	"os"

	"github.com/handoff-go/handoff/internal/control"
)

// Supervisor is not supported on this platform.
type Supervisor struct{}

// New returns [ErrNotSupported] on this platform, after checking cfg.
func New(cfg Config) (*Supervisor, error) {
	if _, err := cfg.normalize(); err != nil {
		return nil, err
	}
	return nil, ErrNotSupported
}

// Run returns [ErrNotSupported].
func (s *Supervisor) Run(ctx context.Context) error { return ErrNotSupported }

// Upgrade reports [ErrNotSupported].
func (s *Supervisor) Upgrade(ctx context.Context) control.UpgradeResult {
	return control.UpgradeResult{Error: ErrNotSupported.Error()}
}

// Status returns an empty status.
func (s *Supervisor) Status() control.Status { return control.Status{} }

// Rollback is not offered by the supervisor: it restarts a worker that
// fails, and its upgrades keep the old worker until the new one is ready.
func (s *Supervisor) Rollback(ctx context.Context, reason string) control.RollbackResult {
	return control.RollbackResult{PID: os.Getpid(), Error: "handoff run does not roll back: upgrade to the previous build instead"}
}
