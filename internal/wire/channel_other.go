//go:build !unix

package wire

import (
	"context"
	"os"
)

// Pair is not supported on this platform.
func Pair() (parent, child *os.File, err error) { return nil, nil, ErrNotSupported }

// Ready is not supported on this platform.
func Ready(f *os.File) error { return ErrNotSupported }

// Fail is not supported on this platform.
func Fail(f *os.File, reason string) error { return ErrNotSupported }

// Go is not supported on this platform.
func Go(f *os.File) error { return ErrNotSupported }

// Live is not supported on this platform.
func Live(f *os.File) error { return ErrNotSupported }

// ReadyLive is not supported on this platform.
func ReadyLive(f *os.File) error { return ErrNotSupported }

// Main is not supported on this platform.
func Main(f *os.File) error { return ErrNotSupported }

// Wait is not supported on this platform.
func Wait(ctx context.Context, f *os.File) error { return ErrNotSupported }

// TakeGo is not supported on this platform.
func TakeGo(f *os.File) bool { return false }

// WaitGo is not supported on this platform.
func WaitGo(ctx context.Context, f *os.File) error { return ErrNotSupported }

// WaitLive is not supported on this platform.
func WaitLive(ctx context.Context, f *os.File) error { return ErrNotSupported }

// WaitMain is not supported on this platform.
func WaitMain(ctx context.Context, f *os.File) error { return ErrNotSupported }

// WaitClosed is not supported on this platform.
func WaitClosed(ctx context.Context, f *os.File) error { return ErrNotSupported }

// Upgraded is not supported on this platform.
func Upgraded(f *os.File) error { return ErrNotSupported }

// AskRollback is not supported on this platform.
func AskRollback(f *os.File, reason string) error { return ErrNotSupported }

// Retire is not supported on this platform.
func Retire(f *os.File) error { return ErrNotSupported }

// Retiring is not supported on this platform.
func Retiring(f *os.File) error { return ErrNotSupported }

// Lines is not supported on this platform.
type Lines struct{}

// NewLines is not supported on this platform.
func NewLines(f *os.File) *Lines { return &Lines{} }

// Next is not supported on this platform.
func (l *Lines) Next(ctx context.Context) (After, error) { return After{}, ErrNotSupported }

// Wait is not supported on this platform.
func (l *Lines) Wait(ctx context.Context) error { return ErrNotSupported }

// WaitLive is not supported on this platform.
func (l *Lines) WaitLive(ctx context.Context) error { return ErrNotSupported }

// Buffered reports false: nothing is ever read here.
func (l *Lines) Buffered() bool { return false }
