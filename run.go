package boxrun

import (
	"bytes"
	"context"
	"errors"
	"strings"
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
	b, err := m.Create(ctx, BoxSpec{
		Image: req.Image, CPU: req.CPU, MemoryMB: req.MemoryMB, DiskSizeGB: req.DiskSizeGB,
		Network: req.Network, Env: req.Env, Volumes: req.Volumes,
	})
	if err != nil {
		return nil, canceled(ctx, err)
	}
	defer func() {
		if err := m.Remove(context.WithoutCancel(ctx), b.ID, true); err != nil {
			m.log.Warn("run: remove box", "box", b.ID, "err", err)
		}
	}()
	var stdout, stderr bytes.Buffer
	e, err := m.Exec(ctx, b.ID, ExecRequest{Cmd: req.Cmd, Env: req.Env, TimeoutMS: req.TimeoutMS}, &stdout, &stderr)
	if err != nil {
		return nil, canceled(ctx, err)
	}
	res := &RunResult{
		ExitCode: e.ExitCode,
		Stdout:   strings.ToValidUTF8(stdout.String(), "\uFFFD"),
		Stderr:   strings.ToValidUTF8(stderr.String(), "\uFFFD"),
	}
	if e.ErrorMessage != "" {
		msg := e.ErrorMessage
		res.ErrorMessage = &msg
	}
	return res, nil
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
