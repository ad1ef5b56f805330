package fdpass

import (
	"net"
	"os"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// BenchmarkListener adopts 1000 inherited listeners, as a new generation
// handed them does, and reports the cost per socket (µs/socket) of
// Listener and of the least any adoption through the net package costs
// without wrapping the descriptor: net.FileListener (its copy, type,
// addresses and poller registration) through a carrier, and the close of
// the original. What Listener adds (its checks, the carrier pointed back
// at /dev/null) is the difference. One op is the thousand; putting the
// descriptors in place and closing what was adopted are not timed.
func BenchmarkListener(b *testing.B) {
	const n = 1000
	// The listeners stay open in this process, as in a parent; each round
	// gets copies of them at consecutive numbers, as a child inherits
	// them (one open file each, non-blocking, shared with the original).
	originals := make([]int, n)
	names := make([]string, n)
	for i := range originals {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(b, err)
		defer ln.Close()
		originals[i], err = dup(ln.(*net.TCPListener))
		require.NoError(b, err)
		defer unix.Close(originals[i])
		names[i] = "tcp/" + ln.Addr().String()
	}
	// The copies go above everything this process has open (two per
	// listener), the descriptor table grown to hold them first.
	base := 4 * n
	probe, err := unix.FcntlInt(0, unix.F_DUPFD_CLOEXEC, base+n)
	require.NoError(b, err)
	unix.Close(probe)
	inherit := func(b *testing.B) {
		b.StopTimer()
		defer b.StartTimer()
		for i, fd := range originals {
			require.NoError(b, unix.Dup3(fd, base+i, unix.O_CLOEXEC))
		}
	}
	closeAll := func(b *testing.B, lns []net.Listener) {
		b.StopTimer()
		defer b.StartTimer()
		for _, ln := range lns {
			ln.Close()
		}
	}
	lns := make([]net.Listener, n)

	b.Run("Listener", func(b *testing.B) {
		for b.Loop() {
			inherit(b)
			in := inherited(base, names)
			for i, name := range names {
				ln, err := in.Listener(name, "tcp")
				if err != nil {
					b.Fatal(err)
				}
				lns[i] = ln
			}
			in.CloseUnclaimed()
			closeAll(b, lns)
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*n), "µs/socket")
	})

	b.Run("net.FileListener", func(b *testing.B) {
		// Through a file that is not registered with the poller, pointed
		// at each socket in turn, the original closed after: as little
		// as adopting it takes without wrapping it.
		null, err := unix.Open(os.DevNull, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		require.NoError(b, err)
		carrier := os.NewFile(uintptr(null), os.DevNull)
		defer carrier.Close()
		for b.Loop() {
			inherit(b)
			for i := range names {
				if err := unix.Dup3(base+i, null, unix.O_CLOEXEC); err != nil {
					b.Fatal(err)
				}
				ln, err := net.FileListener(carrier)
				if err != nil {
					b.Fatal(err)
				}
				lns[i] = ln
				unix.Close(base + i)
			}
			closeAll(b, lns)
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*n), "µs/socket")
	})
}

// BenchmarkMarkInherited proves 1000 inherited sockets open and marks
// them close-on-exec, as Inherit does first: markInherited (three system
// calls whatever the number) against markEach (one each). In a new
// process the difference is larger than here: markInherited touches
// nothing of the sockets, which a poll of the range did.
func BenchmarkMarkInherited(b *testing.B) {
	const n = 1000
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(b, err)
	defer ln.Close()
	fd, err := dup(ln.(*net.TCPListener))
	require.NoError(b, err)
	defer unix.Close(fd)
	base := 4 * n
	for i := range n {
		require.NoError(b, unix.Dup3(fd, base+i, 0))
		defer unix.Close(base + i)
	}
	for name, mark := range map[string]func(int, int) (int, error){"markInherited": markInherited, "markEach": markEach} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if bad, err := mark(base, n); bad >= 0 {
					b.Fatal(bad, err)
				}
			}
		})
	}
}
