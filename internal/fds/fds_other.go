//go:build !unix

package fds

import "errors"

func dupCloexec(fd int) (int, error) { return -1, errors.New("not supported on this platform") }

// BoundTo reports false: there are no inherited sockets here.
func BoundTo(fd int, addr string) bool { return false }
