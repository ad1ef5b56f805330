package pidfile

import "errors"

// ErrNotSupported is returned by every function on platforms that are not unix.
var ErrNotSupported = errors.New("pidfile: not supported on this platform")

// ErrNotOwner is wrapped by the error [Remove] returns when the pidfile names a process other
// than the one asked about; the message says which PID it names. The file is left in place.
// After a hand-over this is the expected outcome for the old process.
var ErrNotOwner = errors.New("pidfile: not owner")

// ErrMalformed is wrapped by the error [Read] (and [Remove]) returns when the file exists but
// does not hold a single positive decimal PID; the message quotes the content and says why.
var ErrMalformed = errors.New("pidfile: malformed content")
