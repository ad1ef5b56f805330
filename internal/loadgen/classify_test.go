package loadgen

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestClassify(t *testing.T) {
	op := func(op string, err error) error {
		return &net.OpError{Op: op, Net: "tcp", Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 54321}, Err: err}
	}
	for _, tc := range []struct {
		stage string
		err   error
		want  string
	}{
		{"dial", op("dial", os.NewSyscallError("connect", syscall.ECONNREFUSED)), "dial: connection refused"},
		{"dial", op("dial", os.NewSyscallError("connect", syscall.EAGAIN)), "dial: resource temporarily unavailable"},
		{"dial", op("dial", os.NewSyscallError("connect", syscall.EADDRNOTAVAIL)), "dial: cannot assign requested address"},
		{"dial", op("dial", &net.DNSError{Err: "no such host", Name: "nope.invalid"}), "dial: lookup failed"},
		{"dial", op("dial", os.ErrDeadlineExceeded), "dial: timeout"},
		{"write", op("write", os.NewSyscallError("write", syscall.EPIPE)), "write: broken pipe"},
		{"write", op("write", os.NewSyscallError("write", syscall.ECONNRESET)), "write: connection reset"},
		{"read", op("read", os.NewSyscallError("read", syscall.ECONNRESET)), "read: connection reset"},
		{"read", op("read", os.ErrDeadlineExceeded), "read: timeout"},
		{"read", op("read", net.ErrClosed), "read: closed"},
		{"read", io.EOF, "read: EOF"},
		{"read", fmt.Errorf("wrapped: %w", io.ErrUnexpectedEOF), "read: unexpected EOF"},
		{"read", malformed("chunk size"), "malformed: chunk size"},
		{"read", errors.New("something new at 127.0.0.1:54321"), "read: other"},
	} {
		assert.Equal(t, tc.want, classify(tc.stage, tc.err), "%v", tc.err)
	}
}
