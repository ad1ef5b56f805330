package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const statusSample = `Name:	hello
Umask:	0022
State:	S (sleeping)
VmPeak:	 1240104 kB
VmSize:	 1240104 kB
VmHWM:	    7864 kB
VmRSS:	    6512 kB
RssAnon:	    2304 kB
Threads:	5
`

func TestParseStatus(t *testing.T) {
	m, err := parseStatus(statusSample)
	require.NoError(t, err)
	assert.Equal(t, Memory{RSS: 6512 * 1024, HWM: 7864 * 1024}, m)
}

func TestParseStatusErrors(t *testing.T) {
	for name, text := range map[string]string{
		"zombie":   "Name:\thello\nState:\tZ (zombie)\n",
		"no HWM":   "VmRSS:\t 1 kB\n",
		"bad unit": "VmRSS:\t 1 MB\nVmHWM:\t 1 kB\n",
		"bad num":  "VmRSS:\t x kB\nVmHWM:\t 1 kB\n",
	} {
		_, err := parseStatus(text)
		assert.Error(t, err, name)
	}
}
