package wire

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// CtlCarry is the control file of what a parent carries over to its child
// besides files (protocol version 3): named sections of bytes — the
// application's state, TLS session ticket keys — in a file only the child
// has (a memfd on Linux, an unlinked temporary file elsewhere). A child of
// an older version closes it unread.
//
//	<name> <length>\n<bytes>...
const CtlCarry = "carry"

// Sections of the carry file.
const (
	CarryState      = "state"       // Options.State's bytes
	CarryTicketKeys = "ticket-keys" // the TLS session ticket keys, see upgrade
)

// MaxCarry bounds the carry file.
const MaxCarry = 64 << 20

// encodeCarry lays out sections in name order.
func encodeCarry(w io.Writer, sections map[string][]byte) error {
	total := 0
	for _, name := range slices.Sorted(maps.Keys(sections)) {
		if name == "" || strings.ContainsAny(name, " \n") {
			return fmt.Errorf("carry section name %q", name)
		}
		b := sections[name]
		total += len(b)
		if total > MaxCarry {
			return fmt.Errorf("%d bytes to carry to the next generation, more than %d", total, MaxCarry)
		}
		if _, err := fmt.Fprintf(w, "%s %d\n", name, len(b)); err != nil {
			return err
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// decodeCarry reads what encodeCarry wrote.
func decodeCarry(r io.Reader) (map[string][]byte, error) {
	br := bufio.NewReader(io.LimitReader(r, MaxCarry+64<<10))
	sections := map[string][]byte{}
	total := 0
	for {
		head, err := br.ReadString('\n')
		if errors.Is(err, io.EOF) && head == "" {
			return sections, nil
		}
		if err != nil {
			return nil, fmt.Errorf("carry file: %w", err)
		}
		name, size, ok := strings.Cut(strings.TrimSuffix(head, "\n"), " ")
		n, err := strconv.Atoi(size)
		if !ok || name == "" || err != nil || n < 0 || total+n > MaxCarry {
			return nil, fmt.Errorf("carry file: malformed section header %.40q", head)
		}
		if _, dup := sections[name]; dup {
			return nil, fmt.Errorf("carry file: section %q twice", name)
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(br, b); err != nil {
			return nil, fmt.Errorf("carry file: section %q: %w", name, err)
		}
		total += n
		sections[name] = b
	}
}
