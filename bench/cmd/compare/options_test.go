package main

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/handoff-go/handoff/internal/loadgen"
)

func TestParseFlagsDefaults(t *testing.T) {
	o, err := parseFlags([]string{"-out", "/tmp/x"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "/tmp/x", o.Out)
	assert.Equal(t, 3, o.Runs)
	assert.Equal(t, 10, o.Upgrades)
	assert.Equal(t, time.Second, o.Interval)
	assert.Equal(t, 2*time.Second, o.Baseline)
	assert.Equal(t, mechanisms, o.Mechanisms)
	assert.Equal(t, []loadConfig{
		{Mode: loadgen.NewConn, Clients: 32}, {Mode: loadgen.NewConn, Clients: 128},
		{Mode: loadgen.KeepAlive, Clients: 32}, {Mode: loadgen.KeepAlive, Clients: 128},
		{Mode: loadgen.NewConn, Clients: 512}, {Mode: loadgen.KeepAlive, Clients: 512},
		{Mode: loadgen.NewConn, Clients: 32, TLS: true}, {Mode: loadgen.KeepAlive, Clients: 32, TLS: true},
		{Mode: loadgen.KeepAlive, Clients: 32, TLS: true, HTTP2: true},
		{Mode: loadgen.KeepAlive, Clients: 300, Idle: true},
	}, o.Configs)

	o, err = parseFlags([]string{"-quick", "-out", "d"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, 1, o.Runs)
	assert.Equal(t, 3, o.Upgrades)
	assert.Equal(t, time.Second, o.Baseline)
	assert.Equal(t, []loadConfig{{Mode: loadgen.NewConn, Clients: 32}, {Mode: loadgen.KeepAlive, Clients: 128}}, o.Configs)

	o, err = parseFlags([]string{"-quick", "-runs", "2", "-upgrades", "5", "-out", "d",
		"-mechanisms", "tableflip, handoff", "-configs", "keepalive-8"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, 2, o.Runs, "explicit flags win over -quick")
	assert.Equal(t, 5, o.Upgrades)
	require.Len(t, o.Mechanisms, 2)
	assert.Equal(t, "tableflip", o.Mechanisms[0].Name)
	assert.Equal(t, "handoff", o.Mechanisms[1].Name)
	assert.Equal(t, []loadConfig{{Mode: loadgen.KeepAlive, Clients: 8}}, o.Configs)
}

func TestParseFlagsErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "-out DIR is required"},
		{[]string{"-out", "d", "extra"}, `unexpected argument "extra"`},
		{[]string{"-out", "d", "-runs", "-1"}, "-runs -1"},
		{[]string{"-out", "d", "-upgrades", "-2"}, "-upgrades -2"},
		{[]string{"-out", "d", "-interval", "10ms"}, "at least 200ms"},
		{[]string{"-out", "d", "-baseline", "-1s"}, "-baseline -1s"},
		{[]string{"-out", "d", "-mechanisms", "nginx"}, `unknown mechanism "nginx"; choose from handoff, tableflip, reuseport, stopstart`},
		{[]string{"-out", "d", "-mechanisms", "handoff,handoff"}, "handoff given twice"},
		{[]string{"-out", "d", "-configs", "keepalive"}, `configuration "keepalive"`},
		{[]string{"-out", "d", "-configs", "pipelined-4"}, `mode "pipelined"`},
		{[]string{"-out", "d", "-configs", "newconn-0"}, `configuration "newconn-0"`},
		{[]string{"-out", "d", "-configs", "newconn-4,newconn-4"}, "newconn-4 given twice"},
		{[]string{"-bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"-runs", "x"}, `invalid value "x" for flag -runs`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			_, err := parseFlags(tc.args, io.Discard)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
	_, err := parseFlags([]string{"-h"}, io.Discard)
	assert.ErrorIs(t, err, errUsage)
}

func TestConfigNames(t *testing.T) {
	for _, c := range []loadConfig{
		{Mode: loadgen.NewConn, Clients: 32},
		{Mode: loadgen.KeepAlive, Clients: 128},
		{Mode: loadgen.KeepAlive, Clients: 300, Idle: true},
		{Mode: loadgen.NewConn, Clients: 32, TLS: true},
		{Mode: loadgen.KeepAlive, Clients: 512, TLS: true},
		{Mode: loadgen.KeepAlive, Clients: 32, TLS: true, HTTP2: true},
		{Mode: loadgen.KeepAlive, Clients: 300, Idle: true, TLS: true, HTTP2: true},
	} {
		back, err := parseConfig(c.Name())
		require.NoError(t, err)
		assert.Equal(t, c, back)
	}
	assert.Equal(t, "keep-alive, 128 clients", loadConfig{Mode: loadgen.KeepAlive, Clients: 128}.Title())
	assert.Equal(t, "new connection per request, 32 clients", loadConfig{Mode: loadgen.NewConn, Clients: 32}.Title())
	assert.Equal(t, "HTTPS, new connection per request (a TLS handshake each), 32 clients", loadConfig{Mode: loadgen.NewConn, Clients: 32, TLS: true}.Title())
	assert.Equal(t, "HTTP/2 over TLS, keep-alive (a connection per client), 32 clients", loadConfig{Mode: loadgen.KeepAlive, Clients: 32, TLS: true, HTTP2: true}.Title())
	assert.True(t, loadConfig{Mode: loadgen.KeepAlive, Clients: 32, TLS: true, HTTP2: true}.Load().HTTP2)
	_, err := parseConfig("h2-newconn-32")
	assert.ErrorContains(t, err, "use h2-keepalive-N")
	assert.Equal(t, "tls-idle-300", loadConfig{Mode: loadgen.KeepAlive, Clients: 300, Idle: true, TLS: true}.Name())
	assert.Equal(t, time.Second, loadConfig{Mode: loadgen.KeepAlive, Clients: 300, Idle: true}.Load().Interval)
}
