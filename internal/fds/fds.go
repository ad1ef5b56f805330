// Package fds gives the descriptors behind sockets and files to a process
// about to be started: duplicated as raw close-on-exec descriptors, or as
// they are, checked open once it has started.
package fds

import (
	"os"
	"syscall"
)

// Dup duplicates the descriptor behind c (a listener, a packet conn, an
// *os.File) as a raw close-on-exec descriptor, sharing c's open file
// description: its mode (non-blocking, for Go's sockets) is left alone.
// Unlike an *os.File, the copy is not registered with the runtime's poller,
// which would cost about 3 µs a descriptor. The caller closes it with
// syscall.Close.
func Dup(c syscall.Conn) (int, error) {
	nfd := -1
	var dupErr error
	if err := control(c, func(fd uintptr) { nfd, dupErr = dupCloexec(int(fd)) }); err != nil {
		return -1, err
	}
	if dupErr != nil {
		return -1, os.NewSyscallError("fcntl", dupErr)
	}
	return nfd, nil
}

// Raw returns the descriptors behind conns, in order, without copying
// them: valid for as long as none of conns is closed, which [Open] tells
// afterwards. It is how a process is started with the descriptors
// themselves: if all of conns are open once it has started, each number
// named its own socket or file all along, as a conn's descriptor is closed
// only after the conn is marked closed. The error is a [*ClosedError].
func Raw(conns []syscall.Conn) ([]int, error) {
	fds := make([]int, len(conns))
	for i, c := range conns {
		if err := control(c, func(fd uintptr) { fds[i] = int(fd) }); err != nil {
			return nil, &ClosedError{i, err}
		}
	}
	return fds, nil
}

// Open reports the first of conns that is closed, as a [*ClosedError].
func Open(conns []syscall.Conn) error {
	for i, c := range conns {
		if err := control(c, func(uintptr) {}); err != nil {
			return &ClosedError{i, err}
		}
	}
	return nil
}

// ClosedError is the error of [Raw] and [Open] for the conn at Index,
// closed (or with no descriptor to give).
type ClosedError struct {
	Index int
	Err   error
}

func (e *ClosedError) Error() string { return e.Err.Error() }
func (e *ClosedError) Unwrap() error { return e.Err }

// Pin runs f with the descriptors behind conns, in order, each held open
// for as long as f runs: a conn closed meanwhile has its descriptor closed
// only once f returns, so each number names its own socket or file
// throughout (sending them with SCM_RIGHTS, say, needs no copy of each).
// A [*ClosedError] if one of conns is closed already; otherwise f's error.
func Pin(conns []syscall.Conn, f func(fds []int) error) error {
	fds := make([]int, len(conns))
	var pin func(i int) error
	pin = func(i int) error {
		if i == len(conns) {
			return f(fds)
		}
		var err error
		if cerr := control(conns[i], func(fd uintptr) {
			fds[i] = int(fd)
			err = pin(i + 1)
		}); cerr != nil {
			return &ClosedError{i, cerr}
		}
		return err
	}
	return pin(0)
}

func control(c syscall.Conn, f func(fd uintptr)) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	return rc.Control(f)
}
