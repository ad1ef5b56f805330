package upgrade

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/handoff-go/handoff/internal/wire"
)

// What a generation carries over to the next besides files: the
// application's state (Options.State) and the TLS session ticket keys.

// InheritedState returns what the previous generation's Options.State
// returned when it started this one; nil in a first generation, or if it
// had no State.
func (u *Upgrader) InheritedState() []byte { return u.inheritedState }

// ShareSessionTickets makes TLS sessions that cfg's server issues
// resumable in every generation: the session ticket keys are handed from
// each generation to the next, so that a client that reconnects after an
// upgrade (TLS connections do not move) resumes its session instead of a
// full handshake. The keys rotate every 24 hours across generations, and
// a key decrypts tickets for 7 days, as crypto/tls's own keys do. Call it
// before the server uses cfg, for every tls.Config of this process's
// servers; it calls cfg.SetSessionTicketKeys.
func (u *Upgrader) ShareSessionTickets(cfg *tls.Config) {
	u.tickets.share(cfg, u.exitC)
}

// Ticket key rotation, as crypto/tls does for its own keys.
const (
	ticketKeyRotation = 24 * time.Hour
	ticketKeyLifetime = 7 * 24 * time.Hour
)

// ticketKeys are the session ticket keys this generation's servers use and
// hands on.
type ticketKeys struct {
	mu      sync.Mutex
	keys    []ticketKey // newest first
	cfgs    []*tls.Config
	rotates bool // the rotation goroutine runs
	now     func() time.Time
}

type ticketKey struct {
	created time.Time
	key     [32]byte
}

// share sets cfg's keys and keeps them set as they rotate, until exit.
func (t *ticketKeys) share(cfg *tls.Config, exit <-chan struct{}) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.rotateLocked()
	t.cfgs = append(t.cfgs, cfg)
	cfg.SetSessionTicketKeys(t.rawLocked())
	if !t.rotates {
		t.rotates = true
		go t.rotateEvery(time.Hour, exit)
	}
}

func (t *ticketKeys) rotateEvery(d time.Duration, exit <-chan struct{}) {
	tick := time.NewTicker(d)
	defer tick.Stop()
	for {
		select {
		case <-exit:
			return
		case <-tick.C:
		}
		t.mu.Lock()
		if t.rotateLocked() {
			raw := t.rawLocked()
			for _, cfg := range t.cfgs {
				cfg.SetSessionTicketKeys(raw)
			}
		}
		t.mu.Unlock()
	}
}

// rotateLocked adds a key if the newest is due for rotation, and drops
// expired ones; it reports whether the keys changed.
func (t *ticketKeys) rotateLocked() bool {
	now := time.Now()
	if t.now != nil {
		now = t.now()
	}
	changed := false
	if len(t.keys) == 0 || now.Sub(t.keys[0].created) >= ticketKeyRotation {
		k := ticketKey{created: now}
		rand.Read(k.key[:]) // never fails (crypto/rand)
		t.keys = append([]ticketKey{k}, t.keys...)
		changed = true
	}
	for len(t.keys) > 1 && now.Sub(t.keys[len(t.keys)-1].created) >= ticketKeyLifetime {
		t.keys = t.keys[:len(t.keys)-1]
		changed = true
	}
	return changed
}

func (t *ticketKeys) rawLocked() [][32]byte {
	raw := make([][32]byte, len(t.keys))
	for i, k := range t.keys {
		raw[i] = k.key
	}
	return raw
}

// encode returns the keys for the carry file, nil if none are in use:
// per key, its creation time (unix seconds, 8 bytes) and the key.
func (t *ticketKeys) encode() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.cfgs) == 0 {
		return nil // nobody here shares them; the next generation makes its own
	}
	b := make([]byte, 0, len(t.keys)*40)
	for _, k := range t.keys {
		b = binary.BigEndian.AppendUint64(b, uint64(k.created.Unix()))
		b = append(b, k.key[:]...)
	}
	return b
}

// decode sets the keys from the carry file.
func (t *ticketKeys) decode(b []byte) error {
	if len(b)%40 != 0 || len(b) > 64*40 {
		return fmt.Errorf("%d bytes of session ticket keys", len(b))
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.keys = nil
	for ; len(b) > 0; b = b[40:] {
		k := ticketKey{created: time.Unix(int64(binary.BigEndian.Uint64(b)), 0)}
		copy(k.key[:], b[8:40])
		t.keys = append(t.keys, k)
	}
	return nil
}

// carry returns the sections of the carry file for the next generation:
// Options.State's bytes and the ticket keys in use. An error of State
// fails the upgrade.
func (u *Upgrader) carry() (map[string][]byte, error) {
	sections := map[string][]byte{}
	if u.opts.State != nil {
		b, err := u.opts.State()
		if err != nil {
			return nil, fmt.Errorf("Options.State: %w", err)
		}
		if len(b) > wire.MaxCarry {
			return nil, fmt.Errorf("Options.State returned %d bytes, more than %d", len(b), wire.MaxCarry)
		}
		sections[wire.CarryState] = b
	}
	if b := u.tickets.encode(); b != nil {
		sections[wire.CarryTicketKeys] = b
	}
	return sections, nil
}

// adoptCarry reads what the parent carried over.
func (u *Upgrader) adoptCarry(sections map[string][]byte) error {
	u.inheritedState = sections[wire.CarryState]
	if b, ok := sections[wire.CarryTicketKeys]; ok {
		if err := u.tickets.decode(b); err != nil {
			return errors.New("upgrade: the parent carried malformed session ticket keys")
		}
	}
	return nil
}
