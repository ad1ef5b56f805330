//go:build linux

package integration_test

import (
	"crypto/x509"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/handoff-go/handoff/internal/harness"
)

// testCert writes a self-signed certificate for 127.0.0.1 and localhost,
// and its key, into a temp dir, and returns their paths and the pool that
// trusts it.
func testCert(t *testing.T) (certPath, keyPath string, pool *x509.CertPool) {
	t.Helper()
	certPath, keyPath, pool, err := harness.WriteCert(t.TempDir())
	require.NoError(t, err)
	return certPath, keyPath, pool
}
