//go:build unix && !linux

package supervisor

// reapOrphans does nothing where there is no child subreaper: orphans of
// workers go to the system's init.
func (s *Supervisor) reapOrphans() (stop func()) {
	s.log.Info("supervisor: this platform has no child subreaper; orphans of workers go to init")
	return func() {}
}
