// Command gosdserver is an HTTP server that knows nothing of handoff: it
// takes its listener with github.com/coreos/go-systemd/v22/activation
// (which requires LISTEN_PID to equal its own PID) and says ready with
// go-systemd's sd_notify. It answers "gosd pid=<pid>" and stops on
// SIGTERM. The integration tests hand it a handoff program's socket with
// upgrade.Options.ForeignChild.
package main

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/coreos/go-systemd/v22/daemon"
)

func main() {
	lns, err := activation.Listeners()
	if err != nil {
		log.Fatal(err)
	}
	if len(lns) != 1 || lns[0] == nil {
		log.Fatalf("want one inherited listener, got %d (LISTEN_PID=%q, pid %d)", len(lns), os.Getenv("LISTEN_PID"), os.Getpid())
	}
	body := fmt.Sprintf("gosd pid=%d", os.Getpid())
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, body)
	})}
	go srv.Serve(lns[0])
	if ok, err := daemon.SdNotify(false, daemon.SdNotifyReady); !ok {
		log.Fatalf("sd_notify READY=1 not sent: %v", err)
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	<-term
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv.Shutdown(ctx)
}
