//go:build unix

package upgrade

import (
	"crypto/tls"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTicketKeysRotate(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	tk := &ticketKeys{now: func() time.Time { return now }}
	exit := make(chan struct{})
	defer close(exit)
	tk.share(&tls.Config{}, exit)
	require.Len(t, tk.keys, 1)
	first := tk.keys[0].key

	now = now.Add(23 * time.Hour)
	assert.False(t, tk.rotateLocked(), "not yet due")
	now = now.Add(time.Hour)
	assert.True(t, tk.rotateLocked(), "due after 24 hours")
	require.Len(t, tk.keys, 2)
	assert.Equal(t, first, tk.keys[1].key, "the old key still decrypts")

	// Handed to the next generation, the keys and their ages go on.
	next := &ticketKeys{now: func() time.Time { return now }}
	require.NoError(t, next.decode(tk.encode()))
	assert.Equal(t, tk.rawLocked(), next.rawLocked())
	assert.Equal(t, tk.keys[1].created, next.keys[1].created)

	for range 8 {
		now = now.Add(24 * time.Hour)
		tk.rotateLocked()
	}
	assert.Len(t, tk.keys, 7, "keys older than 7 days are dropped")
	assert.NotContains(t, tk.rawLocked(), first)

	assert.Error(t, next.decode(make([]byte, 41)))
	assert.Nil(t, (&ticketKeys{}).encode(), "no keys are handed on when nobody shares them")
}

func TestStateErrorFailsBeforeStart(t *testing.T) {
	u := newTestUpgrader(t, "crash", Options{State: func() ([]byte, error) { return nil, errors.New("cache locked") }})
	require.NoError(t, u.Ready())
	err := u.Upgrade(t.Context())
	var ce *ChildError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, StageStart, ce.Stage)
	assert.Zero(t, ce.PID, "nothing was started")
	assert.Contains(t, err.Error(), "Options.State: cache locked")
}
