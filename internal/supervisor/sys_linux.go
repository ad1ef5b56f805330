//go:build linux

package supervisor

import "syscall"

// sysProcAttr: a worker gets SIGTERM if the supervisor dies without
// stopping it (killed), so it does not keep serving unsupervised. It stays
// in the supervisor's process group, so a terminal's ^C reaches both.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
