package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseCounts(t *testing.T) {
	got, err := parseCounts("1,10, 100 ,1000")
	require.NoError(t, err)
	assert.Equal(t, []int{1, 10, 100, 1000}, got)

	for _, bad := range []string{"", "0", "1,,2", "-3", "x", "5001"} {
		_, err := parseCounts(bad)
		assert.Error(t, err, "%q", bad)
	}
}
