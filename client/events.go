package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"

	"github.com/boxrun/boxrun/boxapi"
	sse "github.com/tmaxmax/go-sse"
)

// Subscribe implements boxapi.Service over GET /v1/events (SSE). The
// subscription's channel closes when the caller Closes it or when ctx ends
// (Err is then nil). A dropped connection or a server restart does not end
// it: the client reconnects (backing off up to 2 s) and resumes with a
// replay after the last journaled Seq it delivered, so every journaled
// event arrives once and in order. Before any journaled event was seen, a
// live-only subscription reconnects live (events committed while it was
// disconnected are not replayed). When it cannot reconnect for 30 s, or the
// server answers with an error, the channel closes and Err wraps
// boxapi.ErrCanceled: resume with Replay from the last Seq seen. Subscribe
// returns once the server has accepted the stream, so events published
// afterwards are seen.
func (c *Client) Subscribe(ctx context.Context, filter boxapi.EventFilter) (boxapi.Subscription, error) {
	sctx, cancel := context.WithCancel(ctx)
	resp, err := c.openEvents(sctx, filter)
	if err != nil {
		cancel()
		return nil, err
	}
	s := &subscription{ch: make(chan boxapi.Event, 64), cancel: cancel, done: make(chan struct{})}
	go s.run(sctx, c, filter, resp)
	return s, nil
}

// openEvents opens one /v1/events stream for filter.
func (c *Client) openEvents(ctx context.Context, filter boxapi.EventFilter) (*http.Response, error) {
	q := url.Values{}
	if filter.BoxID != "" {
		q.Set("box_id", filter.BoxID)
	}
	for _, t := range filter.Types {
		q.Add("type", string(t))
	}
	if filter.Replay {
		q.Set("replay", "true")
		q.Set("after_seq", strconv.FormatInt(filter.AfterSeq, 10))
	}
	req, err := c.newRequest(ctx, http.MethodGet, "/v1/events", q, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	return c.send(req)
}

// subscription is a remote boxapi.Subscription fed by one SSE stream.
type subscription struct {
	ch     chan boxapi.Event
	cancel context.CancelFunc
	done   chan struct{} // closed when read returns

	mu  sync.Mutex
	err error
}

// C returns the event channel; it is closed when the subscription ends.
func (s *subscription) C() <-chan boxapi.Event { return s.ch }

// Err reports why the subscription ended (nil after Close or ctx end).
func (s *subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Close ends the subscription and waits for its reader; it is idempotent.
func (s *subscription) Close() error {
	s.cancel()
	<-s.done
	return nil
}

// run delivers the events of resp, reconnecting after a break (see
// Subscribe) until ctx ends or reconnecting fails.
func (s *subscription) run(ctx context.Context, c *Client, filter boxapi.EventFilter, resp *http.Response) {
	defer close(s.done)
	defer close(s.ch)
	last := int64(-1) // highest journaled Seq delivered; -1: none yet
	if filter.Replay {
		last = filter.AfterSeq
	}
	var r retrier
	for {
		progressed, fatal, err := s.read(ctx, resp, &last)
		for ctx.Err() == nil && !fatal {
			if progressed {
				r.reset()
				progressed = false
			}
			if err == nil {
				err = fmt.Errorf("server ended the stream")
			}
			if werr := r.wait(ctx, err); werr != nil {
				break
			}
			f := filter
			if last >= 0 {
				f.Replay, f.AfterSeq = true, last
			}
			var oerr error
			if resp, oerr = c.openEvents(ctx, f); oerr == nil {
				err = nil
				break
			}
			err = oerr
			fatal = !errors.Is(oerr, ErrUnavailable)
		}
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			s.mu.Lock()
			s.err = &boxapi.Error{Code: boxapi.CodeCanceled, Message: "event stream ended: " + err.Error(), Err: err}
			s.mu.Unlock()
			return
		}
	}
}

// read delivers the events of one stream, skipping journaled ones at or
// below *last (already delivered before a reconnect). fatal reports an
// answer that reconnecting cannot fix (bad event data).
func (s *subscription) read(ctx context.Context, resp *http.Response, last *int64) (progressed, fatal bool, err error) {
	defer resp.Body.Close()
	for ev, rerr := range sse.Read(resp.Body, &sse.ReadConfig{MaxEventSize: maxEventSize}) {
		if rerr != nil {
			return progressed, false, rerr
		}
		if ev.Data == "" {
			continue
		}
		var e boxapi.Event
		if jerr := json.Unmarshal([]byte(ev.Data), &e); jerr != nil {
			return progressed, true, fmt.Errorf("bad event data: %w", jerr)
		}
		if e.Seq > 0 {
			if e.Seq <= *last {
				continue
			}
			*last = e.Seq
		}
		progressed = true
		select {
		case s.ch <- e:
		case <-ctx.Done():
			return progressed, false, nil
		}
	}
	return progressed, false, nil
}
