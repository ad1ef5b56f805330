// Package hello is the HTTP server every benchmark server runs, so that
// the mechanisms differ only in how they upgrade: GET / answers
// "version=<version> pid=<pid>".
package hello

import (
	"fmt"
	"net/http"
	"os"
	"time"
)

// Server returns the benchmark's HTTP server for a build of version.
func Server(version string) *http.Server {
	body := fmt.Sprintf("version=%s pid=%d", version, os.Getpid())
	return &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, body) }),
		ReadHeaderTimeout: 10 * time.Second,
	}
}
