//go:build unix && !linux

package supervisor

import "syscall"

// sysProcAttr: the worker stays in the supervisor's process group.
func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{} }
