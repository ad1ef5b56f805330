//go:build linux

package integration_test

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestStateCarriesOver: each generation hands the next its count of
// requests answered (Options.State, read with InheritedState), so the
// count goes on across upgrades.
func TestStateCarriesOver(t *testing.T) {
	s := startServer(t, bins.v1, "")
	total := 0
	for i, n := range []int{10, 5, 7} {
		for range n {
			_, err := s.get()
			require.NoError(t, err)
		}
		total += n
		if i < 2 {
			s.upgrade([]string{bins.v2, bins.v1}[i], syscall.SIGHUP)
		}
	}
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + s.addr + "/count")
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, strconv.Itoa(total), string(b), "requests counted across 3 generations")
}

// TestTLSSessionResumption: TLS connections cannot move, so a client
// reconnects after each upgrade; with the session ticket keys shared by
// the generations (ShareSessionTickets) it resumes its session instead of
// a full handshake. Without them, every reconnection is a full handshake.
func TestTLSSessionResumption(t *testing.T) {
	for _, share := range []bool{true, false} {
		t.Run(fmt.Sprintf("share=%v", share), func(t *testing.T) {
			cert, key, pool := testCert(t)
			s := startServer(t, bins.v1, "", "-tls-cert", cert, "-tls-key", key, "-share-tickets="+strconv.FormatBool(share))
			const clients, upgrades = 8, 10
			trs := make([]*http.Transport, clients)
			for i := range trs {
				trs[i] = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ClientSessionCache: tls.NewLRUClientSessionCache(4)}}
				defer trs[i].CloseIdleConnections()
			}
			full, resumed := 0, 0
			get := func(tr *http.Transport) {
				resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("https://" + s.addr + "/")
				require.NoError(t, err)
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.TLS.DidResume {
					resumed++
				} else {
					full++
				}
				tr.CloseIdleConnections() // the next request connects again, as after an upgrade
			}
			for _, tr := range trs {
				get(tr) // the first handshake is a full one
			}
			full = 0
			for i := 1; i <= upgrades; i++ {
				s.upgrade([]string{bins.v2, bins.v1}[i%2], syscall.SIGHUP)
				for _, tr := range trs {
					get(tr)
				}
			}
			t.Logf("share session ticket keys %v: %d reconnections after %d upgrades: %d resumed, %d full handshakes (%.1f per upgrade)",
				share, clients*upgrades, upgrades, resumed, full, float64(full)/upgrades)
			if share {
				assert.Zero(t, full, "full handshakes after an upgrade")
			} else {
				assert.Equal(t, clients*upgrades, full, "without shared keys every reconnection is a full handshake")
			}
		})
	}
}
