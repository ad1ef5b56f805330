package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// runExec is the floor: fork and exec this binary with n plain listeners
// as inherited descriptors (none for n = 0) and a pipe, and wait for the
// child's first byte on it. It starts the child as both libraries do,
// with syscall.StartProcess and raw descriptors, and reaps it itself.
func runExec(ctx context.Context, n int) error {
	var m parentReport
	var err error
	if m.before, err = countFDs(); err != nil {
		return err
	}
	var lc net.ListenConfig
	lns, err := listenAll(n, func(addr string) (net.Listener, error) {
		return lc.Listen(ctx, "tcp", addr)
	})
	if err != nil {
		return err
	}
	fds := make([]uintptr, 0, n)
	for _, ln := range lns {
		fd, err := rawFD(ln.(syscall.Conn))
		if err != nil {
			closeAll(lns)
			return err
		}
		fds = append(fds, fd)
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		closeAll(lns)
		return os.NewSyscallError("pipe2", err)
	}
	r, w := p[0], p[1]
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, envRole+"=") })
	env = append(env, envRole+"="+roleBareChild)
	attr := &syscall.ProcAttr{Env: env, Files: append([]uintptr{0, 1, 2, uintptr(w)}, fds...)}

	settle()
	m.start = time.Now()
	pid, _, err := syscall.StartProcess(os.Args[0], os.Args[:1], attr)
	unix.Close(w)
	if err != nil {
		closeAll(lns)
		return fmt.Errorf("start %s: %w", os.Args[0], err)
	}
	err = readByte(r)
	m.end = time.Now()
	m.took = m.end.Sub(m.start)
	unix.Close(r)
	var ws unix.WaitStatus
	if _, werr := wait4(pid, &ws); werr != nil {
		err = errors.Join(err, werr)
	} else if !ws.Exited() || ws.ExitStatus() != 0 {
		err = errors.Join(err, fmt.Errorf("bare child %d ended with status %v", pid, ws))
	}
	if err != nil {
		closeAll(lns)
		return err
	}
	if m.after, err = countFDs(); err != nil {
		return err
	}
	return finish(m, lns, nil)
}

// runBareChild writes one byte to fd 3: the floor's child.
func runBareChild(context.Context, int) error {
	_, err := unix.Write(3, []byte{1})
	return os.NewSyscallError("write", err)
}

// rawFD returns c's descriptor without (*os.File).Fd, which would put
// the socket in blocking mode.
func rawFD(c syscall.Conn) (uintptr, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var fd uintptr
	if err := rc.Control(func(f uintptr) { fd = f }); err != nil {
		return 0, err
	}
	return fd, nil
}

// readByte blocks until fd yields a byte.
func readByte(fd int) error {
	var b [1]byte
	for {
		n, err := unix.Read(fd, b[:])
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return os.NewSyscallError("read", err)
		case n == 0:
			return errors.New("the bare child exited without writing")
		}
		return nil
	}
}

// wait4 is unix.Wait4 for one process, retried on EINTR.
func wait4(pid int, ws *unix.WaitStatus) (int, error) {
	for {
		got, err := unix.Wait4(pid, ws, 0, nil)
		if !errors.Is(err, unix.EINTR) {
			if err != nil {
				return got, os.NewSyscallError("wait4", err)
			}
			return got, nil
		}
	}
}
