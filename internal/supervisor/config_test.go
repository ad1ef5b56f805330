package supervisor

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSupervisorParseListen(t *testing.T) {
	for _, c := range []struct {
		in, name string
		stream   bool
	}{
		{"tcp:127.0.0.1:8080", "tcp/127.0.0.1%3A8080", true},
		{"tcp6:[::1]:80", "tcp6/[%3A%3A1]%3A80", true},
		{"udp::5353", "udp/%3A5353", false},
		{"unix:/run/a%b.sock", "unix//run/a%25b.sock", true},
		{"unixgram:/run/log", "unixgram//run/log", false},
	} {
		l, err := ParseListen(c.in)
		require.NoError(t, err, c.in)
		assert.Equal(t, c.name, l.Name(), c.in)
		assert.Equal(t, c.stream, l.stream(), c.in)
		assert.Equal(t, c.in, l.String())
	}
	for _, bad := range []string{"", "tcp", "tcp:", "127.0.0.1:80", "sctp:1.2.3.4:5", "tcp:localhost", "unix:"} {
		_, err := ParseListen(bad)
		assert.ErrorIs(t, err, ErrConfig, "%q", bad)
	}
}

func TestSupervisorParseReady(t *testing.T) {
	d, err := ParseReady("notify")
	require.NoError(t, err)
	assert.Zero(t, d)
	d, err = ParseReady("delay=2s")
	require.NoError(t, err)
	assert.Equal(t, 2*time.Second, d)
	for _, bad := range []string{"", "delay", "delay=", "delay=-1s", "delay=0", "delay=soon", "sd_notify"} {
		_, err := ParseReady(bad)
		assert.ErrorIs(t, err, ErrConfig, "%q", bad)
	}
}

func TestParseCrashPolicy(t *testing.T) {
	p, err := ParseCrashPolicy("exit")
	require.NoError(t, err)
	assert.Equal(t, CrashExit, p)
	p, err = ParseCrashPolicy("restart")
	require.NoError(t, err)
	assert.Equal(t, CrashRestart, p)
	_, err = ParseCrashPolicy("ignore")
	assert.ErrorIs(t, err, ErrConfig)
}

func TestSupervisorConfigErrors(t *testing.T) {
	ok := Config{Listen: []Listen{{"tcp", "127.0.0.1:0"}}, Program: []string{"true"}}
	for name, c := range map[string]struct {
		mod  func(*Config)
		want string
	}{
		"no listen":      {func(c *Config) { c.Listen = nil }, "no sockets to listen on"},
		"twice":          {func(c *Config) { c.Listen = append(c.Listen, c.Listen[0]) }, "listed twice"},
		"bad network":    {func(c *Config) { c.Listen = []Listen{{"sctp", "x"}} }, "listen network"},
		"no program":     {func(c *Config) { c.Program = nil }, "no program to run"},
		"empty program":  {func(c *Config) { c.Program = []string{""} }, "no program to run"},
		"neg timeout":    {func(c *Config) { c.UpgradeTimeout = -1 }, "UpgradeTimeout"},
		"neg drain":      {func(c *Config) { c.DrainTimeout = -1 }, "DrainTimeout"},
		"delay too long": {func(c *Config) { c.ReadyDelay = 2 * time.Minute }, "not shorter than the upgrade timeout"},
		"bad policy":     {func(c *Config) { c.OnCrash = 7 }, "OnCrash"},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := ok
			cfg.Listen = append([]Listen(nil), ok.Listen...)
			c.mod(&cfg)
			_, err := cfg.normalize()
			assert.ErrorIs(t, err, ErrConfig)
			assert.ErrorContains(t, err, c.want)
		})
	}
	n, err := ok.normalize()
	require.NoError(t, err)
	assert.Equal(t, DefaultUpgradeTimeout, n.UpgradeTimeout)
	assert.Equal(t, DefaultDrainTimeout, n.DrainTimeout)
	assert.NotNil(t, n.Logger)
	assert.NotNil(t, n.Stderr)
	assert.Zero(t, ok.UpgradeTimeout, "the caller's config is not written to")
}
