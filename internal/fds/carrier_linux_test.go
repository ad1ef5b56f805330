package fds

import (
	"os"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// TestCarriersAtOnce: adoptions running at the same time each get a
// carrier of their own, made for them and kept for the next.
func TestCarriersAtOnce(t *testing.T) {
	const n = 3
	var p Carriers
	defer p.Close()
	fd, err := unix.Open(os.DevNull, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	require.NoError(t, err)
	defer unix.Close(fd)
	var arrived sync.WaitGroup
	arrived.Add(n)
	seen := make(chan uintptr, n)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := Adopt(&p, fd, func(f *os.File) (int, error) {
				seen <- f.Fd()
				arrived.Done()
				arrived.Wait() // all n inside an adoption at once
				return 0, nil
			})
			assert.NoError(t, err)
		}()
	}
	wg.Wait()
	close(seen)
	distinct := map[uintptr]bool{}
	for fd := range seen {
		distinct[fd] = true
	}
	assert.Len(t, distinct, n, "a carrier per adoption at once")
	assert.Len(t, p.Idle(), n, "kept for the next")
}
