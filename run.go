package boxrun

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
)

// Run is the ephemeral one-shot of /v1/run: it creates a box (no name,
// default workdir, req.Env as box env), runs req.Cmd (when empty, the
// image's entrypoint and cmd) with req.Env again as exec env, collects stdout and stderr, and always removes the box. A
// non-zero exit is data, not an error. ErrorMessage is set when the command
// failed without an exit status of its own (timeout, runtime error).
func (m *Manager) Run(ctx context.Context, req RunRequest) (*RunResult, error) {
	if err := m.enter(); err != nil {
		return nil, err
	}
	defer m.leave()
	if len(req.Cmd) == 0 && m.images != nil {
		// No command: the image's default (entrypoint + cmd), as docker run.
		m.imageMu.RLock()
		img, err := m.pullImage(ctx, req.Image, PullMissing)
		m.imageMu.RUnlock()
		if err == nil {
			req.Cmd = append(append([]string{}, img.Config.Entrypoint...), img.Config.Cmd...)
		}
	}
	if len(req.Cmd) == 0 {
		return nil, invalid("cmd must be a non-empty list")
	}
	if req.TimeoutMS < 0 {
		return nil, invalid("timeout_ms must be positive")
	}
	if req.OutputLimit < 0 {
		return nil, invalid("output_limit must be positive")
	}
	limit := req.OutputLimit
	if limit == 0 {
		limit = DefaultRunOutputLimit
	}
	if l := m.cfg.outputLimit; l > 0 && l < limit {
		limit = l
	}
	spec := BoxSpec{
		Image: req.Image, CPU: req.CPU, MemoryMB: req.MemoryMB, DiskSizeGB: req.DiskSizeGB,
		Network: req.Network, Env: req.Env, Volumes: req.Volumes,
	}
	if shot := m.oneShotter(&spec); shot != nil {
		return m.runOneShot(ctx, shot, spec, req, limit)
	}
	// The box is marked as a run's (a crash before the end leaves it to
	// the next Open), and removed however the run ends, a failed create
	// included.
	b, err := m.create(ctx, spec, true)
	if b != nil {
		defer func() {
			if err := m.Remove(context.WithoutCancel(ctx), b.ID, true); err != nil {
				m.log.Warn("run: remove box", "box", b.ID, "err", err)
			}
		}()
	}
	if err != nil {
		return nil, canceled(ctx, err)
	}
	out := &runOutput{limit: limit}
	e, err := m.Exec(ctx, b.ID, ExecRequest{Cmd: req.Cmd, Env: req.Env, TimeoutMS: req.TimeoutMS, OutputLimit: limit},
		out.writer(&out.stdout), out.writer(&out.stderr))
	if err != nil {
		return nil, canceled(ctx, err)
	}
	return out.result(e, limit), nil
}

// result is the RunResult of exec e whose output o collected.
func (o *runOutput) result(e *Exec, limit int64) *RunResult {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.truncated {
		o.stderr.WriteString(TruncationMarker(limit))
	}
	res := &RunResult{
		ExitCode: e.ExitCode,
		Stdout:   strings.ToValidUTF8(o.stdout.String(), "\uFFFD"),
		Stderr:   strings.ToValidUTF8(o.stderr.String(), "\uFFFD"),
	}
	if e.ErrorMessage != "" {
		msg := e.ErrorMessage
		res.ErrorMessage = &msg
	}
	return res
}

// runOutput collects a Run's stdout and stderr, together at most limit
// bytes (the exec stores the same prefix and a truncation marker).
type runOutput struct {
	mu             sync.Mutex
	limit, n       int64
	truncated      bool
	stdout, stderr bytes.Buffer
}

type runWriter struct {
	o   *runOutput
	buf *bytes.Buffer
}

func (o *runOutput) writer(buf *bytes.Buffer) io.Writer { return runWriter{o, buf} }

// Write keeps what fits under the limit and drops the rest.
func (w runWriter) Write(p []byte) (int, error) {
	o := w.o
	o.mu.Lock()
	defer o.mu.Unlock()
	keep := p
	if rest := o.limit - o.n; int64(len(keep)) > rest {
		keep = keep[:max(rest, 0)]
		o.truncated = true
	}
	w.buf.Write(keep)
	o.n += int64(len(keep))
	return len(p), nil
}

// canceled reports err as CANCELED when ctx ended (the caller went away):
// what failed then (often an interrupted SQLite statement) is a consequence,
// not something to show.
func canceled(ctx context.Context, err error) error {
	if ctx.Err() == nil {
		return err
	}
	return &Error{Code: CodeCanceled, Message: "Canceled: " + ctx.Err().Error(), Err: errors.Join(ctx.Err(), err)}
}
