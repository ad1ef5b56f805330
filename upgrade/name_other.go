//go:build !linux

package upgrade

// nameProcess does nothing: only Linux starts a program from its
// descriptor (see fromDescriptor).
func nameProcess(string) {}
