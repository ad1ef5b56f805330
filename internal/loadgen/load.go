package loadgen

import (
	"context"
	"sync"
	"time"
)

// Load is a running load, from [Start]. Its methods are safe for
// concurrent use. A Load cannot be restarted after [Load.Stop].
type Load struct {
	cfg     Config
	req     []byte
	clients []*client
	start   time.Time
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	stopOnce sync.Once
	mu       sync.Mutex
	end      time.Time // when Stop was called; zero while running
}

// Run drives load against cfg.Addr until ctx is done, then waits for its
// clients and returns the totals. Requests in flight when ctx ends are
// abandoned and not counted.
//
// The error is non-nil, and wraps [ErrConfig], only if cfg is invalid; ctx
// ending is how Run is meant to end, so it is not an error.
func Run(ctx context.Context, cfg Config) (Stats, error) {
	if ctx.Err() != nil {
		if _, err := cfg.normalize(); err != nil {
			return Stats{}, err
		}
		return Stats{Bodies: map[string]int64{}, Errors: map[string]int64{}}, nil
	}
	// ctx is not handed to the clients: a dial given a context whose
	// deadline has passed fails at once with "i/o timeout", possibly before
	// ctx.Err() reports it, and would be counted. The clients' own context
	// is only ever canceled, by Stop.
	l, err := Start(cfg)
	if err != nil {
		return Stats{}, err
	}
	<-ctx.Done()
	return l.Stop(), nil
}

// Start starts driving load against cfg.Addr and returns at once. Read
// progress with [Load.Snapshot]; end it with [Load.Stop], which must be
// called: until then the clients' goroutines and connections live on.
//
// The error is non-nil, and wraps [ErrConfig], only if cfg is invalid.
func Start(cfg Config) (*Load, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	// Clients treat this context ending as "the load is over": whatever
	// an attempt saw after that is not counted. Only Stop cancels it.
	ctx, cancel := context.WithCancel(context.Background())
	l := &Load{
		cfg:    cfg,
		req:    cfg.request(),
		start:  time.Now(),
		cancel: cancel,
	}
	for i := range cfg.Clients {
		l.clients = append(l.clients, newClient(l, i))
	}
	for _, c := range l.clients {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			c.run(ctx)
		}()
	}
	return l, nil
}

// Snapshot returns the totals so far. It does not disturb the load, and
// may be called at any time, also after Stop.
func (l *Load) Snapshot() Stats {
	s := Stats{
		Bodies: make(map[string]int64),
		Errors: make(map[string]int64),
	}
	var h histogram
	for _, c := range l.clients {
		c.mu.Lock()
		c.t.sum(&s, &h)
		c.mu.Unlock()
	}
	s.P50, s.P99, s.Max = h.quantile(0.50), h.quantile(0.99), h.max
	l.mu.Lock()
	end := l.end
	l.mu.Unlock()
	if end.IsZero() {
		end = time.Now()
	}
	s.Elapsed = end.Sub(l.start)
	return s
}

// Stop ends the load: requests in flight are abandoned (their connections
// closed, their results not counted), and Stop waits for every client to
// return before it returns the totals. Calling it again returns the same
// totals.
func (l *Load) Stop() Stats {
	l.stopOnce.Do(func() {
		l.mu.Lock()
		l.end = time.Now()
		l.mu.Unlock()
		l.cancel()
		l.wg.Wait()
	})
	return l.Snapshot()
}
