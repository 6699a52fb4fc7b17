package client

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/boxrun/boxrun/boxapi"
)

// execRequest is the body of POST /v1/boxes/{box}/exec, with the stdin_b64
// extension.
type execRequest struct {
	Cmd       []string          `json:"cmd"`
	Env       map[string]string `json:"env,omitempty"`
	Workdir   *string           `json:"workdir,omitempty"`
	TimeoutMS *int64            `json:"timeout_ms,omitempty"`
	StdinB64  string            `json:"stdin_b64,omitempty"`
	// OutputLimit is an extension (docs/api-extensions.md).
	OutputLimit int64 `json:"output_limit,omitempty"`
}

// StartExec implements boxapi.Service: POST /v1/boxes/{box}/exec. A non-nil
// req.Stdin is read to EOF first and sent with the request (the API has no
// streaming stdin for execs).
func (c *Client) StartExec(ctx context.Context, box string, req boxapi.ExecRequest) (*boxapi.Exec, error) {
	in := execRequest{Cmd: req.Cmd, Env: req.Env, OutputLimit: req.OutputLimit}
	if in.Cmd == nil {
		in.Cmd = []string{}
	}
	if req.Workdir != "" {
		in.Workdir = &req.Workdir
	}
	if req.TimeoutMS != 0 {
		in.TimeoutMS = &req.TimeoutMS
	}
	if req.Stdin != nil {
		b, err := io.ReadAll(req.Stdin)
		if err != nil {
			return nil, fmt.Errorf("client: read exec stdin: %w", err)
		}
		in.StdinB64 = base64.StdEncoding.EncodeToString(b)
	}
	var e boxapi.Exec
	if err := c.do(ctx, http.MethodPost, boxPath(box)+"/exec", nil, in, &e); err != nil {
		return nil, err
	}
	return &e, nil
}

// Exec implements boxapi.Service: it starts the command, streams its output
// events over SSE to stdout and stderr (reconnecting after a dropped stream
// without repeating output; write errors are ignored, as by the Manager) and
// returns the finished record. Canceling ctx cancels the exec on the server
// and returns the canceled record with ctx's error.
func (c *Client) Exec(ctx context.Context, box string, req boxapi.ExecRequest, stdout, stderr io.Writer) (*boxapi.Exec, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// The start request does not end with ctx: once the server has started
	// the command, only the reply's ID lets us cancel it, so abandoning the
	// request when ctx ends would leave the command running unseen. The start
	// is bounded by startExecTimeout instead, and a ctx that ended meanwhile
	// cancels the exec right after.
	sctx, stop := context.WithTimeout(context.WithoutCancel(ctx), startExecTimeout)
	e, err := c.StartExec(sctx, box, req)
	stop()
	if err != nil {
		return nil, err
	}
	if ctx.Err() != nil {
		return c.cancelAfter(ctx, e.ID)
	}
	fin, err := c.execEvents(ctx, e.ID, -1, func(ev boxapi.ExecEvent) error {
		if ev.Kind != boxapi.KindLog {
			return nil
		}
		w := stdout
		if ev.Stream == "stderr" {
			w = stderr
		}
		if w != nil {
			// As with the Manager, the caller's writer errors are its own:
			// the exec runs on and its output stays stored.
			_, _ = io.WriteString(w, ev.Data)
		}
		return nil
	})
	if err != nil {
		if ctx.Err() != nil {
			return c.cancelAfter(ctx, e.ID)
		}
		return nil, err
	}
	if fin != nil { // the exit event carried it (extension)
		return fin, nil
	}
	// The exit event and the final record are stored together, so the
	// record is final now; on servers where it lags (the original BoxRun),
	// poll briefly.
	for {
		fin, err := c.GetExec(ctx, e.ID)
		if err != nil {
			if ctx.Err() != nil {
				return c.cancelAfter(ctx, e.ID)
			}
			return nil, err
		}
		if fin.Status != boxapi.ExecRunning {
			return fin, nil
		}
		select {
		case <-ctx.Done():
			return c.cancelAfter(ctx, e.ID)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// startExecTimeout bounds the start request of Exec, which is not canceled
// with the caller's context (see Exec).
const startExecTimeout = time.Minute

// cancelAfter cancels execID on the server after ctx ended, and returns the
// record (when it could be read) with ctx's error.
func (c *Client) cancelAfter(ctx context.Context, execID string) (*boxapi.Exec, error) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	e, err := c.CancelExec(cctx, execID)
	if errors.Is(err, boxapi.ErrConflict) { // already finished
		e, err = c.GetExec(cctx, execID)
	}
	if err != nil {
		e = nil
	}
	return e, ctx.Err()
}

// GetExec implements boxapi.Service: GET /v1/boxes/_/exec/{id}.
func (c *Client) GetExec(ctx context.Context, execID string) (*boxapi.Exec, error) {
	var e boxapi.Exec
	if err := c.do(ctx, http.MethodGet, execPath(execID), nil, nil, &e); err != nil {
		return nil, err
	}
	return &e, nil
}

// ListExecs implements boxapi.Service: GET /v1/boxes/{box}/execs.
func (c *Client) ListExecs(ctx context.Context, box string) ([]*boxapi.Exec, error) {
	var out []*boxapi.Exec
	if err := c.do(ctx, http.MethodGet, boxPath(box)+"/execs", nil, nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// WaitExec implements boxapi.Service with the :wait extension, which blocks
// on the server until the exec has finished. A connection dropped while
// waiting is retried.
func (c *Client) WaitExec(ctx context.Context, execID string) (*boxapi.Exec, error) {
	var r retrier
	for {
		var e boxapi.Exec
		err := c.do(ctx, http.MethodGet, execPath(execID)+":wait", nil, nil, &e)
		if err == nil {
			return &e, nil
		}
		if !errors.Is(err, ErrUnavailable) || ctx.Err() != nil {
			return nil, err
		}
		if werr := r.wait(ctx, err); werr != nil {
			return nil, werr
		}
	}
}

// CancelExec implements boxapi.Service: POST /v1/boxes/_/exec/{id}:cancel.
func (c *Client) CancelExec(ctx context.Context, execID string) (*boxapi.Exec, error) {
	var e boxapi.Exec
	if err := c.do(ctx, http.MethodPost, execPath(execID)+":cancel", nil, nil, &e); err != nil {
		return nil, err
	}
	return &e, nil
}

// resume runs stream, one connection of a resumable stream, until it
// reports done (then its err is the result), connecting again at the
// pace of a retrier after a connection that broke; a connection that made
// progress resets the pace, one that ended without an error counts as
// failing with ended. It returns ctx's error once ctx ends.
func resume(ctx context.Context, stream func() (done, progressed bool, err error), ended error) error {
	var r retrier
	for {
		done, progressed, err := stream()
		if done {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if progressed {
			r.reset()
		}
		if err == nil {
			err = ended
		}
		if werr := r.wait(ctx, err); werr != nil {
			return werr
		}
	}
}

// retrier paces reconnects: 100 ms doubling to 2 s, giving up after
// retryBudget of consecutive failures. reset after progress.
type retrier struct {
	delay  time.Duration
	failed time.Duration
}

// retryBudget is how long a stream may stay broken before the client gives up.
const retryBudget = 30 * time.Second

func (r *retrier) reset() { r.delay, r.failed = 0, 0 }

// wait sleeps before the next attempt, or returns cause when the budget is
// spent or ctx's error when it ends first.
func (r *retrier) wait(ctx context.Context, cause error) error {
	if r.delay == 0 {
		r.delay = 100 * time.Millisecond
	} else if r.delay *= 2; r.delay > 2*time.Second {
		r.delay = 2 * time.Second
	}
	if r.failed += r.delay; r.failed > retryBudget {
		return cause
	}
	t := time.NewTimer(r.delay)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
