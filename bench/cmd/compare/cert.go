package main

import (
	"crypto/tls"

	"github.com/handoff-go/handoff/internal/harness"
)

// serverCert is the certificate the servers of the tls- configurations
// present: made for this run, for 127.0.0.1, and trusted by the clients.
type serverCert struct {
	CertFile, KeyFile string
	Client            *tls.Config // what the load generator's clients use
}

// makeCert writes a self-signed certificate for 127.0.0.1 and its key into
// dir.
func makeCert(dir string) (*serverCert, error) {
	certFile, keyFile, pool, err := harness.WriteCert(dir)
	if err != nil {
		return nil, err
	}
	return &serverCert{CertFile: certFile, KeyFile: keyFile,
		Client: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}}, nil
}
