package fdpass

import (
	"encoding/gob"
	"fmt"
	"io"
	"strings"
)

// EnvTableflip is the variable github.com/cloudflare/tableflip (v1.2.x)
// sets in the new process it starts. Its parent protocol, which [Inherit]
// understands so that a tableflip-built server can upgrade into a handoff
// build:
//
//   - fd 3: a pipe to the parent; the new process writes one byte, 42,
//     when it is ready (control name [TableflipReady]; see package
//     readiness's ReadyTableflip);
//   - fd 4: a pipe from the parent carrying one gob-encoded [][]string,
//     the names of the files that follow, and then nothing until the
//     parent exits and the pipe reaches EOF (control name
//     [TableflipParent]);
//   - fd 5, 6, ...: the files, named [kind, network, address] (kind is
//     "listener", "packet", "conn" or "fd"), which Inherit names
//     "kind:network:address" as tableflip prints them, e.g.
//     "listener:tcp:127.0.0.1:8080" (see [TableflipName]).
const EnvTableflip = "TABLEFLIP_HAS_PARENT_7DIU3"

// Control names of a tableflip parent's pipes, see [EnvTableflip].
const (
	TableflipReady  = "tableflip-ready"
	TableflipParent = "tableflip-parent"
)

// TableflipName is the name under which [Inherit] files a descriptor a
// tableflip parent passed as [kind, network, addr].
func TableflipName(kind, network, addr string) string {
	return kind + ":" + network + ":" + addr
}

// parseTableflip reads the names a tableflip parent sends on fd 4 and
// returns the manifest of what it passed: the two pipes first, then the
// files.
func parseTableflip(r io.Reader) (*manifest, error) {
	var names [][]string
	// The names come first on the pipe and nothing follows until the
	// parent exits; a limited reader keeps a hostile stream bounded (8 MiB
	// fits MaxFiles names of over 100 bytes each).
	if err := gob.NewDecoder(io.LimitReader(r, 8<<20)).Decode(&names); err != nil {
		return nil, &EnvError{Var: EnvTableflip, Value: "yes", Reason: fmt.Sprintf("cannot decode the parent's file names on fd 4: %v", err)}
	}
	if len(names) > MaxFiles {
		return nil, &EnvError{Var: EnvTableflip, Value: "yes", Reason: fmt.Sprintf("more than %d files", MaxFiles)}
	}
	m := &manifest{controlFirst: true, tableflip: true, control: []string{TableflipReady, TableflipParent}}
	for _, parts := range names {
		if len(parts) > 3 {
			return nil, &EnvError{Var: EnvTableflip, Value: "yes", Reason: fmt.Sprintf("file name %q has more than 3 parts", short(strings.Join(parts, ":")))}
		}
		var p [3]string
		copy(p[:], parts)
		m.names = append(m.names, TableflipName(p[0], p[1], p[2]))
	}
	return m, nil
}
