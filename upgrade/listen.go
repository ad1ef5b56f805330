package upgrade

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/handoff-go/handoff/fdpass"
	"github.com/handoff-go/handoff/internal/wire"
)

// Listen returns a listener for network (tcp, tcp4, tcp6, unix or
// unixpacket) and addr: the one the previous generation handed over under
// the same network and address, or a new one. Either way it is handed to
// the next generation. Call it before Ready; close the listener only when
// draining (after Exit), which Serve and ServeConns do. A new generation
// handed many sockets (32 or more) adopts them on its other CPUs from the
// end of New, and Listen returns the one adopted for it; Ready closes
// those nobody asked for.
func (u *Upgrader) Listen(ctx context.Context, network, addr string) (net.Listener, error) {
	if !streamNetwork(network) {
		return nil, fmt.Errorf("upgrade: Listen: network %q is not a stream network (want tcp, tcp4, tcp6, unix or unixpacket)", network)
	}
	var lc net.ListenConfig
	return adoptOrCreate(u, network, addr, inheritAhead(u.ahead, u.in.Listener), inheritAtAhead(u.ahead, u.in.ListenerAt), func() (net.Listener, error) {
		return lc.Listen(ctx, network, addr)
	})
}

// ListenPacket returns a packet conn for network (udp, udp4, udp6 or
// unixgram) and addr, inherited or new, like Listen.
func (u *Upgrader) ListenPacket(ctx context.Context, network, addr string) (net.PacketConn, error) {
	if !datagramNetwork(network) {
		return nil, fmt.Errorf("upgrade: ListenPacket: network %q is not a datagram network (want udp, udp4, udp6 or unixgram)", network)
	}
	var lc net.ListenConfig
	return adoptOrCreate(u, network, addr, inheritAhead(u.ahead, u.in.PacketConn), inheritAtAhead(u.ahead, u.in.PacketConnAt), func() (net.PacketConn, error) {
		return lc.ListenPacket(ctx, network, addr)
	})
}

// adoptOrCreate takes the socket inherited under network and addr — by
// handoff's name for it, or else, for systemd socket activation, by the
// address it is bound to — or creates it, and registers it for hand-over
// under handoff's name.
func adoptOrCreate[T any](u *Upgrader, network, addr string,
	inherit func(name, network string) (T, error), inheritAt func(network, addr string) (T, error),
	create func() (T, error)) (T, error) {
	k := wire.Key(network, addr)
	var v T
	err := u.register(k, func() (syscall.Conn, error) {
		var err error
		v, err = inherit(k, network)
		if errors.Is(err, fdpass.ErrNotFound) {
			v, err = inheritAt(network, addr)
		}
		if errors.Is(err, fdpass.ErrNotFound) {
			v, err = create()
			if errors.Is(err, syscall.EADDRINUSE) {
				err = addrInUse(network, addr, err)
			}
		}
		if err != nil {
			return nil, err
		}
		return any(v).(syscall.Conn), nil // every net listener and packet conn is one
	})
	if err != nil {
		var zero T
		return zero, fmt.Errorf("upgrade: listen on %s %s: %w", network, addr, err)
	}
	return v, nil
}

// File returns the file the previous generation handed over under name,
// or, in a first generation, the one open creates. Either way it is handed
// to the next generation. Use it for anything that must outlive a
// generation: a lock file, a shared memory segment, a socket made by other
// means.
func (u *Upgrader) File(name string, open func() (*os.File, error)) (*os.File, error) {
	k := wire.FileKey(name)
	var f *os.File
	err := u.register(k, func() (syscall.Conn, error) {
		var err error
		f, err = u.in.File(k)
		if errors.Is(err, fdpass.ErrNotFound) {
			f, err = open()
			if err == nil && f == nil {
				err = errors.New("open returned a nil file")
			}
		}
		if err != nil {
			return nil, err
		}
		return f, nil
	})
	if err != nil {
		return nil, fmt.Errorf("upgrade: file %q: %w", name, err)
	}
	return f, nil
}

// register runs get for a new key and remembers the result for hand-over.
// The key is reserved while get runs, outside the lock: a slow bind must
// not hold up Stop, Ready or Upgrade.
func (u *Upgrader) register(k string, get func() (syscall.Conn, error)) error {
	if err := wire.CheckName(k); err != nil {
		return err
	}
	u.mu.Lock()
	switch _, dup := u.keys[k]; {
	case u.stopped:
		u.mu.Unlock()
		return ErrStopped
	case u.phase != starting:
		u.mu.Unlock()
		return errors.New("called after Ready: take every socket and file before Ready, so that each new generation is handed all of them")
	case dup:
		u.mu.Unlock()
		return errors.New("this process already has it open: ask once and share the result")
	}
	u.keys[k] = nil // reserved
	u.mu.Unlock()

	c, err := get()
	u.mu.Lock()
	defer u.mu.Unlock()
	if err != nil {
		delete(u.keys, k)
		return err
	}
	h := &handed{name: k, conn: c}
	if ul, ok := c.(*net.UnixListener); ok {
		// Until Stop decides this is the last generation (if it already
		// has, while the socket was being made, it is).
		ul.SetUnlinkOnClose(u.stopped && u.successor == nil)
	}
	u.keys[k] = h
	u.files = append(u.files, h)
	return nil
}

// addrInUse explains a bind conflict: who holds the address, if /proc
// tells. handoff never touches that process.
func addrInUse(network, addr string, err error) error {
	if who := holderOf(network, addr); who != "" {
		return fmt.Errorf("%w: held by %s; stop it or choose another address", err, who)
	}
	if staleSocket(network, addr) {
		return fmt.Errorf("%w: %s is a socket file nobody listens on, left by an earlier run; remove it", err, addr)
	}
	return fmt.Errorf("%w: %s; stop it or choose another address", err, unknownHolder)
}

// staleSocket reports whether addr is a unix socket file that refuses
// connections: its listener is gone and nobody unlinked it.
func staleSocket(network, addr string) bool {
	switch network {
	case "unix", "unixpacket", "unixgram":
	default:
		return false
	}
	fi, err := os.Lstat(addr)
	if err != nil || fi.Mode()&os.ModeSocket == 0 {
		return false
	}
	c, err := net.DialTimeout(network, addr, time.Second)
	if err == nil {
		c.Close()
		return false
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}
