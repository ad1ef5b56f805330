package main

import (
	"sync"
	"time"
)

// stallThreshold is how late a 1 ms sleep must wake to count as a stall.
const stallThreshold = 5 * time.Millisecond

// stallMonitor notices when this process — the load generator's — does not
// run: a goroutine sleeps 1 ms at a time and records every wake-up that
// came more than stallThreshold late. On a shared machine this tells a gap
// in the responses that the clients caused by not running (nobody sent a
// request) from one the server caused. It is a lower bound: the clients
// may wait for a CPU while the monitor's thread still runs.
type stallMonitor struct {
	base time.Time
	stop chan struct{}
	done chan struct{}

	mu     sync.Mutex
	stalls []window // relative to base, ordered
}

func startStallMonitor(base time.Time) *stallMonitor {
	s := &stallMonitor{base: base, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		last := time.Now()
		for {
			select {
			case <-s.stop:
				return
			default:
			}
			time.Sleep(time.Millisecond)
			now := time.Now()
			if now.Sub(last) > time.Millisecond+stallThreshold {
				s.mu.Lock()
				s.stalls = append(s.stalls, window{last.Sub(s.base), now.Sub(s.base)})
				s.mu.Unlock()
			}
			last = now
		}
	}()
	return s
}

// Stop stops the monitor and returns the stalls it saw.
func (s *stallMonitor) Stop() []window {
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stalls
}

// longestStall returns the longest part of w covered by one stall.
func longestStall(stalls []window, w window) time.Duration {
	var longest time.Duration
	for _, s := range stalls {
		from, to := max(s.from, w.from), min(s.to, w.to)
		longest = max(longest, to-from)
	}
	return longest
}
