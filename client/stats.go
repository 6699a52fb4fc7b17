package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	"github.com/boxrun/boxrun/boxapi"
	sse "github.com/tmaxmax/go-sse"
)

// Stats implements boxapi.Service over GET /v1/boxes/{id}/stats.
func (c *Client) Stats(ctx context.Context, box string) (*boxapi.Stats, error) {
	var st boxapi.Stats
	if err := c.do(ctx, http.MethodGet, boxPath(box)+"/stats", nil, nil, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// StatsStream implements boxapi.Service over the stats SSE stream
// (?stream=1). It returns nil at the server's "end" event (the box stopped)
// and an error wrapping ErrUnavailable when the connection drops: samples
// are not replayable, so it does not reconnect.
func (c *Client) StatsStream(ctx context.Context, box string, opts boxapi.StatsOptions, fn func(*boxapi.Stats) error) error {
	q := url.Values{"stream": {"1"}}
	if opts.Interval > 0 {
		q.Set("interval", opts.Interval.String())
	}
	req, err := c.newRequest(ctx, http.MethodGet, boxPath(box)+"/stats", q, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.send(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	for ev, rerr := range sse.Read(resp.Body, &sse.ReadConfig{MaxEventSize: maxEventSize}) {
		if rerr != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("%w: stats of %s: %w", ErrUnavailable, box, rerr)
		}
		switch ev.Type {
		case "stats":
			var st boxapi.Stats
			if err := json.Unmarshal([]byte(ev.Data), &st); err != nil {
				return fmt.Errorf("client: stats of %s: bad event data: %w", box, err)
			}
			if err := fn(&st); err != nil {
				return err
			}
		case "end":
			return nil
		case "error":
			return decodeEventError([]byte(ev.Data))
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("%w: stats of %s: stream ended", ErrUnavailable, box)
}

// decodeEventError turns the envelope of an SSE "error" event into a
// *boxapi.Error.
func decodeEventError(data []byte) error {
	var env struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(data, &env); err != nil || env.Code == "" {
		return &boxapi.Error{Code: boxapi.CodeRuntimeError, Message: string(data)}
	}
	return &boxapi.Error{Code: boxapi.Code(env.Code), Message: env.Message}
}
