package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"

	"github.com/boxrun/boxrun/boxapi"
	sse "github.com/tmaxmax/go-sse"
)

// Subscribe implements boxapi.Service over GET /v1/events (SSE). The
// subscription's channel closes when the caller Closes it, when ctx ends
// (Err is then nil), or when the stream ends or breaks (Err then wraps
// boxapi.ErrCanceled, as for a local subscriber dropped for falling behind:
// resume with Replay from the last Seq seen). Subscribe returns once the
// server has accepted the stream, so events published afterwards are seen.
func (c *Client) Subscribe(ctx context.Context, filter boxapi.EventFilter) (boxapi.Subscription, error) {
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
	sctx, cancel := context.WithCancel(ctx)
	req, err := c.newRequest(sctx, http.MethodGet, "/v1/events", q, nil)
	if err != nil {
		cancel()
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.send(req)
	if err != nil {
		cancel()
		return nil, err
	}
	s := &subscription{ch: make(chan boxapi.Event, 64), cancel: cancel, done: make(chan struct{})}
	go s.read(sctx, resp)
	return s, nil
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

func (s *subscription) read(ctx context.Context, resp *http.Response) {
	defer close(s.done)
	defer close(s.ch)
	defer resp.Body.Close()
	var err error
	for ev, rerr := range sse.Read(resp.Body, &sse.ReadConfig{MaxEventSize: maxEventSize}) {
		if rerr != nil {
			err = rerr
			break
		}
		if ev.Data == "" {
			continue
		}
		var e boxapi.Event
		if jerr := json.Unmarshal([]byte(ev.Data), &e); jerr != nil {
			err = fmt.Errorf("bad event data: %w", jerr)
			break
		}
		select {
		case s.ch <- e:
		case <-ctx.Done():
			return
		}
	}
	if ctx.Err() != nil {
		return
	}
	if err == nil {
		err = fmt.Errorf("server ended the stream")
	}
	s.mu.Lock()
	s.err = &boxapi.Error{Code: boxapi.CodeCanceled, Message: "event stream ended: " + err.Error(), Err: err}
	s.mu.Unlock()
}
