package loadgen_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/handoff-go/handoff/internal/loadgen"
)

func ExampleRun() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "version=v1")
	}))
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	st, err := loadgen.Run(ctx, loadgen.Config{
		Addr:    srv.Listener.Addr().String(),
		Clients: 4,
		Mode:    loadgen.KeepAlive,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("failed:", st.Failed)
	fmt.Println("all answered by v1:", st.Requests > 0 && st.Bodies["version=v1"] == st.Requests)
	// Output:
	// failed: 0
	// all answered by v1: true
}

func ExampleStart() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok")
	}))
	defer srv.Close()

	l, err := loadgen.Start(loadgen.Config{Addr: srv.Listener.Addr().String(), Clients: 2})
	if err != nil {
		fmt.Println(err)
		return
	}
	for range 3 {
		time.Sleep(20 * time.Millisecond)
		_ = l.Snapshot() // e.g. print progress: fmt.Println(l.Snapshot())
	}
	st := l.Stop()
	fmt.Println("failed:", st.Failed, "errors:", st.Errors)
	// Output:
	// failed: 0 errors: map[]
}
