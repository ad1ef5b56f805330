package wire

import (
	"fmt"
	"io"
	"os"
	"strings"
)

// EnvTableflip is the variable github.com/cloudflare/tableflip (v1.2.x)
// sets in the process it starts. Its protocol, which a handoff build
// understands so that a tableflip server can upgrade into it:
//
//   - fd 3: a pipe to the parent; the new process writes one byte, 42,
//     when it is ready, and closes it;
//   - fd 4: a pipe from the parent carrying one [][]string encoded by
//     encoding/gob, the names of the files that follow, and then nothing
//     until the parent exits and the pipe reaches EOF;
//   - fd 5, 6, ...: the files, named [kind, network, address] (kind is
//     "listener", "packet", "conn" or "fd").
const EnvTableflip = "TABLEFLIP_HAS_PARENT_7DIU3"

// Control names under which [Inherited.Take] returns a tableflip parent's
// pipes.
const (
	CtlTableflipReady  = "tableflip-ready"
	CtlTableflipParent = "tableflip-parent"
)

// readTableflipNames reads the names a tableflip parent sends on fd 4 and
// returns the handoff names of the files that follow them.
func readTableflipNames(r io.Reader) ([]string, error) {
	// The names come first on the pipe and nothing follows until the
	// parent exits; the limit keeps a hostile stream bounded (8 MiB fits
	// MaxFiles names of over 100 bytes each).
	names, err := readGobNames(r, 8<<20)
	if err != nil {
		return nil, fmt.Errorf("cannot decode the tableflip parent's file names on fd 4: %w", err)
	}
	return tableflipNames(names)
}

// tableflipNames maps the names tableflip gives its files to the names
// handoff gives the same files, so that Listen, ListenPacket and File find
// them as they find a handoff parent's: a listener that tableflip's
// Listen("tcp", "127.0.0.1:8080") made is handoff's Listen(ctx, "tcp",
// "127.0.0.1:8080"). A file no handoff call can ask for gets a name that
// marks it as tableflip's, and is closed at Ready as nobody takes it.
func tableflipNames(names [][]string) ([]string, error) {
	if len(names) > MaxFiles-2 {
		return nil, fmt.Errorf("the tableflip parent passed more than %d files", MaxFiles-2)
	}
	out := make([]string, len(names))
	for i, parts := range names {
		if len(parts) > 3 {
			return nil, fmt.Errorf("tableflip file name %q has more than 3 parts", short(strings.Join(parts, ":")))
		}
		var p [3]string
		copy(p[:], parts)
		var name string
		switch p[0] {
		case "listener", "packet":
			name = Key(p[1], p[2])
		case "fd":
			name = FileKey(p[1])
		}
		if name == "" || CheckName(name) != nil {
			name = "tableflip-" + p[0]
			if p[0] == "" || CheckName(name) != nil {
				name = "tableflip-file"
			}
		}
		out[i] = name
	}
	return out, nil
}

// ReadyTableflip tells a tableflip parent that this process is ready, as
// tableflip's own Ready does: one byte, 42, on its ready pipe, which it
// then closes. The parent hands over and exits when it reads it.
func ReadyTableflip(f *os.File) error {
	defer f.Close()
	if _, err := f.Write([]byte{42}); err != nil {
		return fmt.Errorf("tell the tableflip parent: %w", err)
	}
	return nil
}
