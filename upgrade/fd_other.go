//go:build !unix

package upgrade

// closeFD closes a raw descriptor: there are none to close here.
func closeFD(int) {}
