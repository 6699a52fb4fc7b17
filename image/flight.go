package image

import (
	"context"
	"sync"

	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/sandbox"
)

// flightGroup runs at most one pull per key at a time. Callers pulling the
// same key while it runs join it: they all get its result and its progress
// (the latest state of each layer is replayed to late joiners). The pull
// runs on its own context, canceled when every caller has given up or the
// Store closes, so one impatient caller does not fail the others.
type flightGroup struct {
	mu sync.Mutex
	m  map[string]*flight
}

type flight struct {
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	img    *sandbox.Image
	err    error

	mu      sync.Mutex // guards the fields below and serializes progress calls
	waiters int
	nextSub int
	subs    map[int]func(boxapi.PullProgress)
	layers  []string
	last    map[string]boxapi.PullProgress
}

func (g *flightGroup) init() { g.m = map[string]*flight{} }

// do joins the flight for key, starting it with fn if there is none, and
// waits for its result or for ctx to end. fn runs under the flight's own
// context (derived from base) and reports progress through the function
// it is given. start is called (with g.mu held) before a new flight's
// goroutine starts; it returns false to refuse (the Store is closing).
func (g *flightGroup) do(ctx, base context.Context, key string, progress func(boxapi.PullProgress),
	start func() bool, finish func(), fn func(context.Context, func(boxapi.PullProgress)) (*sandbox.Image, error)) (*sandbox.Image, error) {
	g.mu.Lock()
	f, ok := g.m[key]
	if !ok {
		if !start() {
			g.mu.Unlock()
			return nil, context.Canceled
		}
		fctx, cancel := context.WithCancel(base)
		f = &flight{ctx: fctx, cancel: cancel, done: make(chan struct{}),
			subs: map[int]func(boxapi.PullProgress){}, last: map[string]boxapi.PullProgress{}}
		g.m[key] = f
		go func() {
			defer finish()
			img, err := fn(fctx, f.report)
			g.mu.Lock()
			if g.m[key] == f {
				delete(g.m, key)
			}
			g.mu.Unlock()
			f.img, f.err = img, err
			cancel()
			close(f.done)
		}()
	}
	// Count the waiter under g.mu, so that the last waiter leaving (below,
	// also under g.mu) cannot cancel a flight someone has just joined.
	f.mu.Lock()
	f.waiters++
	f.mu.Unlock()
	g.mu.Unlock()
	sub := f.subscribe(progress)

	select {
	case <-f.done:
		f.leave(sub)
		if f.img == nil {
			return nil, f.err
		}
		img := *f.img
		return &img, f.err
	case <-ctx.Done():
		g.mu.Lock()
		if f.leave(sub) == 0 {
			if g.m[key] == f {
				delete(g.m, key) // new callers start afresh
			}
			f.cancel()
		}
		g.mu.Unlock()
		return nil, ctx.Err()
	}
}

// subscribe adds progress (if non-nil) to the flight's subscribers,
// replaying the latest state of each layer first.
func (f *flight) subscribe(progress func(boxapi.PullProgress)) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := f.nextSub
	f.nextSub++
	if progress != nil {
		f.subs[id] = progress
		for _, l := range f.layers {
			progress(f.last[l])
		}
	}
	return id
}

// leave unsubscribes a caller and returns how many remain.
func (f *flight) leave(id int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.subs, id)
	f.waiters--
	return f.waiters
}

func (f *flight) report(p boxapi.PullProgress) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.last[p.Layer]; !ok {
		f.layers = append(f.layers, p.Layer)
	}
	f.last[p.Layer] = p
	for _, sub := range f.subs {
		sub(p)
	}
}
