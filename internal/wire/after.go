package wire

// The messages after the hand-over (protocol version 4), while a parent
// that has a rollback window (MetaWindow) is parked. One line each, as
// before the hand-over.
//
//	child:  upgraded            it handed over to a generation of its own: the window ends
//	child:  rollback: <reason>  it asks to be rolled back
//	parent: retire              the parent's build serves again: drain, as a generation that handed over
//	child:  retiring            it drains
const (
	msgUpgraded = "upgraded"
	msgRollback = "rollback: "
	msgRetire   = "retire"
	msgRetiring = "retiring"
)

// Meta keys of version 4.
const (
	// MetaWindow is the parent's rollback window in milliseconds: it stays
	// parked that long after the hand-over, and takes back over if the
	// child dies, fails its health check or asks. Absent or "0": none.
	MetaWindow = "window"
	// MetaRolledBack is set, escaped (EscapeMeta), in a generation that a
	// parked parent started to roll back: why.
	MetaRolledBack = "rolledback"
)

// After is one message after the hand-over.
type After struct {
	Kind   string // "upgraded", "rollback", "retire" or "retiring"
	Reason string // for "rollback"
}

// ParseAfter reads one line after the hand-over.
func ParseAfter(line []byte) (After, error) {
	s := string(line)
	switch {
	case s == msgUpgraded, s == msgRetire, s == msgRetiring:
		return After{Kind: s}, nil
	case len(s) > len(msgRollback) && s[:len(msgRollback)] == msgRollback:
		return After{Kind: "rollback", Reason: Sanitize(s[len(msgRollback):])}, nil
	}
	return After{}, malformed(line)
}
