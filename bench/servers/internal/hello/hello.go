// Package hello is the HTTP server every benchmark server runs, so that
// the mechanisms differ only in how they upgrade: GET / answers
// "version=<version> pid=<pid>".
package hello

import (
	"crypto/tls"
	"flag"
	"fmt"
	"net"
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

// TLSFlags defines -tls-cert and -tls-key on the command line; call it
// before flag.Parse. The function returned wraps a listener in TLS with
// that certificate, offering HTTP/2 and HTTP/1.1 (the client chooses: the
// tls- configurations offer only HTTP/1.1, the h2- ones only h2), or
// returns it as it is if -tls-cert was not given.
func TLSFlags() func(net.Listener) (net.Listener, error) {
	cert := flag.String("tls-cert", "", "serve HTTPS with this certificate (PEM; with -tls-key)")
	key := flag.String("tls-key", "", "the private key of -tls-cert (PEM)")
	return func(ln net.Listener) (net.Listener, error) {
		if *cert == "" && *key == "" {
			return ln, nil
		}
		c, err := tls.LoadX509KeyPair(*cert, *key)
		if err != nil {
			return nil, fmt.Errorf("-tls-cert %s, -tls-key %s: %w", *cert, *key, err)
		}
		return tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{c}, NextProtos: []string{"h2", "http/1.1"}}), nil
	}
}
