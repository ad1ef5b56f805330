//go:build unix

package upgrade

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// BenchmarkUpgrade measures Upgrade() until the new generation is ready,
// with n handed-over descriptors that the child adopts by name. The child
// is this test binary: compare with BenchmarkBareExec.
func BenchmarkUpgrade(b *testing.B) {
	for _, n := range []int{1, 3, 10, 100, 1000} {
		b.Run("fds="+strconv.Itoa(n), func(b *testing.B) {
			benchUpgrade(b, n, Options{Env: append(os.Environ(), envHelper+"=ready", envFiles+"="+strconv.Itoa(n))})
		})
	}
}

// BenchmarkForeignChild is BenchmarkUpgrade/fds=1 for a child that is
// not a handoff program (Options.ForeignChild): started through /bin/sh so
// that LISTEN_PID is its own PID, ready by sd_notify. The difference to
// BenchmarkUpgrade/fds=1 is the cost of the LISTEN_PID mechanism.
func BenchmarkForeignChild(b *testing.B) {
	benchUpgrade(b, 1, Options{Env: append(os.Environ(), envHelper+"=systemd", "GORACE=atexit_sleep_ms=0"), ForeignChild: true})
}

// benchUpgrade times Upgrade() with n handed-over descriptors, a fresh
// Upgrader per iteration, and reports percentiles.
func benchUpgrade(b *testing.B, n int, opts Options) {
	files := handedPipes(b, n)
	var p percentiles
	defer func() { p.report(b) }()
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		u, err := New(opts)
		require.NoError(b, err)
		for i, f := range files {
			_, err := u.File(fileName(i), func() (*os.File, error) { return f, nil })
			require.NoError(b, err)
		}
		require.NoError(b, u.Ready())
		b.StartTimer()
		start := time.Now()
		err = u.Upgrade(b.Context())
		p.add(time.Since(start))
		b.StopTimer()
		require.NoError(b, err)
		if opts.ForeignChild {
			syscall.Kill(u.successor.pid, syscall.SIGTERM) // it waits for it; a handoff child exits when its parent does
		}
		closeSuccessor(u)
		u.Stop()
		b.StartTimer()
	}
}

// handedPipes returns n files to hand over: read ends of pipes whose
// write ends are closed, closed again when b ends.
func handedPipes(b *testing.B, n int) []*os.File {
	files := make([]*os.File, n)
	for i := range files {
		r, w, err := os.Pipe()
		require.NoError(b, err)
		w.Close()
		files[i] = r
		b.Cleanup(func() { r.Close() })
	}
	return files
}

// BenchmarkBareExec is the floor for BenchmarkUpgrade: fork and exec the
// same binary and wait for it to write one byte to an inherited pipe.
func BenchmarkBareExec(b *testing.B) {
	env := append(os.Environ(), envHelper+"=bare")
	buf := make([]byte, 1)
	var p percentiles
	defer func() { p.report(b) }()
	for range b.N {
		start := time.Now()
		r, w, err := os.Pipe()
		require.NoError(b, err)
		cmd := exec.Command(os.Args[0])
		cmd.Env = env
		cmd.ExtraFiles = []*os.File{w}
		require.NoError(b, cmd.Start())
		w.Close()
		_, err = r.Read(buf)
		require.NoError(b, err)
		r.Close()
		p.add(time.Since(start))
		b.StopTimer()
		cmd.Wait()
		b.StartTimer()
	}
}

// percentiles reports the median and 90th percentile of a benchmark's
// iterations next to its mean: a fork+exec has a long tail on a busy machine.
type percentiles []time.Duration

func (p *percentiles) add(d time.Duration) { *p = append(*p, d) }

func (p percentiles) report(b *testing.B) {
	if len(p) == 0 {
		return
	}
	slices.Sort(p)
	b.ReportMetric(float64(p[len(p)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(p[len(p)*9/10].Nanoseconds()), "p90-ns")
}

// BenchmarkPrepare measures the parent's part of an upgrade before the
// fork: Upgrade called → the process about to be started, with everything
// the child is given made (its stdio, the stderr pipe, the readiness and
// connection channels, the program's descriptor, the environment), but
// not start's own collecting of the handed-over descriptors. The start
// is replaced by a failure, so the same Upgrader, warm, upgrades again;
// what the failure undoes is not timed.
func BenchmarkPrepare(b *testing.B) {
	for _, n := range []int{1, 1000} {
		b.Run("fds="+strconv.Itoa(n), func(b *testing.B) {
			files := handedPipes(b, n)
			u, err := New(Options{})
			require.NoError(b, err)
			defer u.Stop()
			for i, f := range files {
				_, err := u.File(fileName(i), func() (*os.File, error) { return f, nil })
				require.NoError(b, err)
			}
			require.NoError(b, u.Ready())
			var p percentiles
			defer func() { p.report(b) }()
			var t0 time.Time
			defer func(old func(string, []string, *syscall.ProcAttr, int, []syscall.Conn) (int, error)) {
				startProcess = old
			}(startProcess)
			startProcess = func(string, []string, *syscall.ProcAttr, int, []syscall.Conn) (int, error) {
				p.add(time.Since(t0))
				return 0, syscall.ENOEXEC
			}
			b.ResetTimer()
			for range b.N {
				t0 = time.Now()
				require.ErrorIs(b, u.Upgrade(b.Context()), syscall.ENOEXEC)
			}
		})
	}
}

// BenchmarkServe sends keep-alive requests one at a time on one
// connection to a hello-world server served by Serve, and by srv.Serve on
// the same kind of listener: the difference, per op, is what Serve adds to
// a request (the response wrapper, the handler's count, the state hook,
// the connection wrapper's locks; the wrapper itself is made once a
// connection). The client's own work is in both.
func BenchmarkServe(b *testing.B) {
	hello := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello\n") })
	for _, via := range []string{"Serve", "srv.Serve"} {
		b.Run(via, func(b *testing.B) {
			u, err := New(Options{Logger: slog.New(slog.DiscardHandler)})
			require.NoError(b, err)
			ln, err := u.Listen(b.Context(), "tcp", "127.0.0.1:0")
			require.NoError(b, err)
			require.NoError(b, u.Ready())
			srv := &http.Server{Handler: hello, IdleTimeout: time.Minute, ReadHeaderTimeout: time.Minute}
			served := make(chan error, 1)
			go func() {
				if via == "Serve" {
					served <- u.Serve(srv, ln)
				} else {
					served <- srv.Serve(ln)
				}
			}()
			c, err := net.Dial("tcp", ln.Addr().String())
			require.NoError(b, err)
			r := bufio.NewReader(c)
			req := []byte("GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Write(req); err != nil {
					b.Fatal(err)
				}
				resp, err := http.ReadResponse(r, nil)
				if err != nil {
					b.Fatal(err)
				}
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK {
					b.Fatalf("response %d: %v", resp.StatusCode, err)
				}
			}
			b.StopTimer()
			c.Close()
			if via != "Serve" {
				srv.Close()
			}
			u.Stop()
			<-served
		})
	}
}
