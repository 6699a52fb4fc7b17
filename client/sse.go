package client

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/boxrun/boxrun/boxapi"
	sse "github.com/tmaxmax/go-sse"
)

// maxEventSize bounds one SSE event (an output chunk is far smaller).
const maxEventSize = 8 << 20

// sseData is the data object of an exec SSE event (spec §6.2).
type sseData struct {
	Stream *string      `json:"stream"`
	Data   string       `json:"data"`
	Seq    int64        `json:"seq"`
	Exec   *boxapi.Exec `json:"exec"` // exit event with ?record=1 (extension)
}

// seqTracker remembers which seqs were delivered: every seq up to mark, plus
// the set above it (live events may arrive slightly out of order).
type seqTracker struct {
	mark  int64
	above map[int64]bool
	final *boxapi.Exec // the record the exit event carried, if any
}

func (t *seqTracker) seen(seq int64) bool { return seq <= t.mark || t.above[seq] }

func (t *seqTracker) add(seq int64) {
	t.above[seq] = true
	for t.above[t.mark+1] {
		delete(t.above, t.mark+1)
		t.mark++
	}
}

// ExecEvents implements boxapi.Service over the SSE endpoint, asking for
// the base64 encoding (docs/api-extensions.md) so that log events carry the
// output's exact bytes, binary included. It resumes
// with ?since= and Last-Event-ID after a dropped stream, so fn sees every
// event once and in order of arrival; it gives up after 30 s without being
// able to reconnect.
func (c *Client) ExecEvents(ctx context.Context, execID string, afterSeq int64, fn func(boxapi.ExecEvent) error) error {
	_, err := c.execEvents(ctx, execID, afterSeq, fn)
	return err
}

// execEvents is ExecEvents that also returns the final record when the
// server put it on the exit event (extension ?record=1; nil from a server
// without it).
func (c *Client) execEvents(ctx context.Context, execID string, afterSeq int64, fn func(boxapi.ExecEvent) error) (*boxapi.Exec, error) {
	if afterSeq < -1 {
		afterSeq = -1
	}
	t := &seqTracker{mark: afterSeq, above: map[int64]bool{}}
	err := resume(ctx, func() (bool, bool, error) { return c.streamExec(ctx, execID, t, fn) },
		fmt.Errorf("%w: exec %s event stream ended before exit", ErrUnavailable, execID))
	return t.final, err
}

// streamExec reads one SSE connection. done reports that ExecEvents must
// return err (exit seen, fn failed, or a definite API error); otherwise the
// caller reconnects.
func (c *Client) streamExec(ctx context.Context, execID string, t *seqTracker, fn func(boxapi.ExecEvent) error) (done, progressed bool, err error) {
	// Byte-exact output: the server sends log data as base64 and says so in
	// a header; a server without the extension ignores the parameter and
	// sends text.
	// The final record comes on the exit event (?record=1), so Exec needs
	// no GET after the stream; a server without it sends none.
	q := url.Values{"encoding": {"base64"}, "record": {"1"}}
	if t.mark >= 0 {
		q.Set("since", strconv.FormatInt(t.mark, 10))
	}
	req, err := c.newRequest(ctx, http.MethodGet, execPath(execID)+"/events", q, nil)
	if err != nil {
		return true, false, err
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-store")
	if t.mark >= 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatInt(t.mark, 10))
	}
	resp, err := c.send(req)
	if err != nil {
		return !errors.Is(err, ErrUnavailable), false, err
	}
	defer resp.Body.Close()
	b64 := resp.Header.Get("X-Boxrun-Encoding") == "base64"
	for ev, rerr := range sse.Read(resp.Body, &sse.ReadConfig{MaxEventSize: maxEventSize}) {
		if rerr != nil {
			return false, progressed, fmt.Errorf("%w: exec %s events: %w", ErrUnavailable, execID, rerr)
		}
		var kind boxapi.EventKind
		switch ev.Type {
		case "log", "stdout", "stderr":
			kind = boxapi.KindLog
		case "exit":
			kind = boxapi.KindExit
		default:
			continue
		}
		var d sseData
		if err := json.Unmarshal([]byte(ev.Data), &d); err != nil {
			return true, progressed, fmt.Errorf("client: exec %s: bad event data: %w", execID, err)
		}
		if t.seen(d.Seq) {
			continue
		}
		if b64 && kind == boxapi.KindLog {
			raw, err := base64.StdEncoding.DecodeString(d.Data)
			if err != nil {
				return true, progressed, fmt.Errorf("client: exec %s: bad base64 event data: %w", execID, err)
			}
			d.Data = string(raw)
		}
		out := boxapi.ExecEvent{ExecID: execID, Seq: d.Seq, Kind: kind, Data: d.Data}
		if d.Stream != nil {
			out.Stream = *d.Stream
		} else if kind == boxapi.KindLog {
			out.Stream = ev.Type // legacy event names carry the stream
		}
		t.add(d.Seq)
		progressed = true
		if err := fn(out); err != nil {
			return true, progressed, err
		}
		if kind == boxapi.KindExit {
			if d.Exec != nil && d.Exec.ID == execID && d.Exec.Status != boxapi.ExecRunning {
				t.final = d.Exec
			}
			return true, progressed, nil
		}
	}
	return false, progressed, nil
}
