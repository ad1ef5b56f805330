//go:build unix

package upgrade

import (
	"encoding/gob"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/handoff-go/handoff/internal/wire"
)

// TestTableflipParent: this test plays a tableflip v1.2.x parent (ready pipe
// at fd 3, gob-encoded names on fd 4, the listener at fd 5, its variable
// set) for a handoff build, which must take the listener by tableflip's
// name for it and answer with tableflip's ready byte, and count the
// parent, alive until this test ends, against Options.MaxGenerations.
func TestTableflipParent(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	lnFile, err := ln.(*net.TCPListener).File()
	require.NoError(t, err)
	defer lnFile.Close()
	readyR, readyW, err := os.Pipe()
	require.NoError(t, err)
	defer readyR.Close()
	namesR, namesW, err := os.Pipe()
	require.NoError(t, err)
	defer namesW.Close()

	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), envHelper+"=tableflip", wire.EnvTableflip+"=yes", "GORACE=atexit_sleep_ms=0")
	cmd.ExtraFiles = []*os.File{readyW, namesR, lnFile}
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	require.NoError(t, cmd.Start())
	readyW.Close()
	namesR.Close()
	// As tableflip does: the names after the start, from another goroutine.
	go gob.NewEncoder(namesW).Encode([][]string{{"listener", "tcp", "127.0.0.1:0"}})

	b := make([]byte, 1)
	n, _ := readyR.Read(b)
	waitErr := cmd.Wait()
	require.NoError(t, waitErr, "stderr: %s", errOut.String())
	require.Equal(t, 1, n, "no ready byte")
	assert.Equal(t, byte(42), b[0], "tableflip's ready byte")
	assert.Equal(t, fmt.Sprintf("%s 2\nrefused: true\n", ln.Addr()), out.String(),
		"the child took the parent's listener by tableflip's name, counts itself generation 2, "+
			"and counts the parent against MaxGenerations while it is alive")
}
