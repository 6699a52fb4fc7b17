package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/boxrun/boxrun/boxapi"
	sse "github.com/tmaxmax/go-sse"
)

// Watch implements boxapi.Service over the SSE endpoint
// GET /v1/boxes/{id}/watch (docs/api-extensions.md). When the connection
// drops it resumes the same watch (watch_id and since) so fn sees every
// change once and in order (the ready event again after each reconnect);
// it gives up after 30 s without being able to reconnect, or at once when
// the server no longer knows the watch.
func (c *Client) Watch(ctx context.Context, box, path string, opts boxapi.WatchOptions, fn func(boxapi.FileEvent) error) error {
	return resume(ctx, func() (bool, bool, error) { return c.streamWatch(ctx, box, path, &opts, fn) },
		fmt.Errorf("%w: watch of %s in %s: stream ended", ErrUnavailable, path, box))
}

// streamWatch reads one SSE connection of a watch, updating opts to
// resume it. done reports that Watch must return err.
func (c *Client) streamWatch(ctx context.Context, box, path string, opts *boxapi.WatchOptions, fn func(boxapi.FileEvent) error) (done, progressed bool, err error) {
	q := url.Values{"path": {path}}
	if opts.Recursive {
		q.Set("recursive", "1")
	}
	if opts.WatchID != "" {
		q.Set("watch_id", opts.WatchID)
		q.Set("since", strconv.FormatInt(opts.AfterSeq, 10))
	}
	req, err := c.newRequest(ctx, http.MethodGet, boxPath(box)+"/watch", q, nil)
	if err != nil {
		return true, false, err
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.send(req)
	if err != nil {
		if errors.Is(err, ErrUnavailable) && opts.WatchID != "" {
			return false, false, err
		}
		return true, false, err
	}
	defer resp.Body.Close()
	for ev, rerr := range sse.Read(resp.Body, &sse.ReadConfig{MaxEventSize: maxEventSize}) {
		if rerr != nil {
			if ctx.Err() != nil {
				return true, progressed, ctx.Err()
			}
			return opts.WatchID == "", progressed, fmt.Errorf("%w: watch of %s in %s: %w", ErrUnavailable, path, box, rerr)
		}
		switch ev.Type {
		case "end":
			return true, progressed, nil
		case "error":
			return true, progressed, decodeEventError([]byte(ev.Data))
		case "":
			continue
		}
		var fe boxapi.FileEvent
		if err := json.Unmarshal([]byte(ev.Data), &fe); err != nil {
			return true, progressed, fmt.Errorf("client: watch of %s in %s: bad event data: %w", path, box, err)
		}
		if fe.Type == boxapi.FileWatchReady {
			opts.WatchID = fe.WatchID
		} else if fe.Seq <= opts.AfterSeq {
			continue
		}
		if err := fn(fe); err != nil {
			return true, progressed, err
		}
		progressed = true
		if fe.Seq > opts.AfterSeq {
			opts.AfterSeq = fe.Seq
		}
	}
	if ctx.Err() != nil {
		return true, progressed, ctx.Err()
	}
	return opts.WatchID == "", progressed, fmt.Errorf("%w: watch of %s in %s: stream ended", ErrUnavailable, path, box)
}
