package gvisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/driver/gvisor/boxinit"
	"github.com/boxrun/boxrun/sandbox"
)

var _ sandbox.Checkpointer = (*Driver)(nil)

// A checkpoint directory holds:
//
//	image/     runsc's checkpoint image (memory, kernel state), flate-compressed
//	upper/     a copy of the box's writable overlay layer (its files)
//	box.json   the box's driver metadata (shape, image rootfs, env, user)
const (
	ckptImage = "image"
	ckptUpper = "upper"
	ckptMeta  = "box.json"
)

// checkpointTimeout bounds one runsc checkpoint or restore.
const checkpointTimeout = 5 * time.Minute

// Checkpoint saves the running sandbox of handle into dir. The sandbox is
// paused while its files are copied, so memory and files are of the same
// instant. The agent connection is closed first (gVisor cannot save a
// sandbox with a host connection open), which ends execs started through it:
// callers refuse a checkpoint while execs run. A box with a network is
// saved without it: Restore gives the new sandbox its own network.
func (d *Driver) Checkpoint(ctx context.Context, handle, dir string, opts sandbox.CheckpointOptions) (err error) {
	if err := d.checkOpen(); err != nil {
		return err
	}
	if d.userns != nil {
		return fmt.Errorf("gvisor: checkpoint is not available rootless: %w", ErrUnsupported)
	}
	if !d.exists(handle) {
		return notFound(handle)
	}
	defer d.lock(handle)()
	m, err := d.readMeta(handle)
	if err != nil {
		return fmt.Errorf("gvisor: %w", err)
	}
	if !d.running(handle) {
		return fmt.Errorf("gvisor: sandbox %s is not running: %w", handle, boxapi.ErrConflict)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return fmt.Errorf("gvisor: checkpoint dir: %w", err)
	}
	defer func() {
		if err != nil {
			_ = removeAll(dir)
		}
	}()
	release, err := d.holdAgent(ctx, handle)
	if err != nil {
		return err
	}
	defer func() {
		release()
		if d.running(handle) {
			d.waitAgent(ctx, handle)
		}
	}()
	if _, err := d.runsc(ctx, m, time.Minute, "pause", handle); err != nil {
		return fmt.Errorf("gvisor: checkpoint: %w: %w", err, boxapi.ErrRuntime)
	}
	paused := true
	defer func() {
		if paused && d.running(handle) {
			if _, rerr := d.runsc(context.WithoutCancel(ctx), m, time.Minute, "resume", handle); rerr != nil {
				d.log.Warn("gvisor: resume after checkpoint", "handle", handle, "err", rerr)
			}
		}
	}()
	// Files first, while paused: the image then matches them.
	if err := copyTree(ctx, d.rawUpper(handle, m), filepath.Join(dir, ckptUpper)); err != nil {
		return err
	}
	mb, _ := json.MarshalIndent(m, "", "  ")
	if err := writeFileAtomic(filepath.Join(dir, ckptMeta), mb); err != nil {
		return fmt.Errorf("gvisor: %w", err)
	}
	args := []string{"checkpoint", "--image-path=" + filepath.Join(dir, ckptImage), "--compression=flate-best-speed"}
	if opts.LeaveRunning {
		args = append(args, "--leave-running")
	}
	if _, err := d.runsc(ctx, m, checkpointTimeout, append(args, handle)...); err != nil {
		return fmt.Errorf("gvisor: checkpoint: %w: %w", err, boxapi.ErrRuntime)
	}
	if !opts.LeaveRunning {
		paused = false
		return d.teardown(context.WithoutCancel(ctx), handle, m)
	}
	// --leave-running restarts the sandbox; a paused one may stay paused.
	paused = false
	if _, err := d.runsc(ctx, m, time.Minute, "resume", handle); err != nil {
		d.log.Debug("gvisor: resume after checkpoint", "handle", handle, "err", err)
	}
	return nil
}

// Restore makes a new sandbox from the checkpoint in dir, under a new handle,
// with spec.BoxID as its box ID and a copy of the checkpoint's files.
func (d *Driver) Restore(ctx context.Context, dir string, spec sandbox.Spec) (string, error) {
	if err := d.checkOpen(); err != nil {
		return "", err
	}
	if d.userns != nil {
		return "", fmt.Errorf("gvisor: restore is not available rootless: %w", ErrUnsupported)
	}
	b, err := os.ReadFile(filepath.Join(dir, ckptMeta))
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("gvisor: checkpoint %s: %w", dir, boxapi.ErrNotFound)
	} else if err != nil {
		return "", fmt.Errorf("gvisor: %w", err)
	}
	var m boxMeta
	if err := json.Unmarshal(b, &m); err != nil {
		return "", fmt.Errorf("gvisor: checkpoint %s: %w: %w", dir, err, boxapi.ErrInvalid)
	}
	if m.Network && d.net == nil {
		return "", fmt.Errorf("gvisor: the checkpoint is of a box with a network: %v: %w", d.netErr, boxapi.ErrInvalid)
	}
	if st, err := os.Stat(m.Lower); err != nil || !st.IsDir() {
		return "", fmt.Errorf("gvisor: the checkpoint's image rootfs %q is gone: %w", m.Lower, boxapi.ErrInvalid)
	}
	if m.Network && spec.BoxID != m.BoxID {
		// A new box (a restore, a fork) next to its source: its own
		// network (below) and host ports of its own, picked when it
		// starts; a hibernated box resumed keeps its ports.
		for i := range m.Ports {
			m.Ports[i].HostPort = 0
		}
	}
	m.BoxID = spec.BoxID
	m.Net = nil
	h, err := newHandle()
	if err != nil {
		return "", fmt.Errorf("gvisor: %w", err)
	}
	defer d.lock(h)()
	fail := func(err error) (string, error) {
		if derr := d.destroy(context.WithoutCancel(ctx), h); derr != nil {
			d.log.Warn("gvisor: cleanup after failed restore", "handle", h, "err", derr)
		}
		return "", err
	}
	bd := d.boxDir(h)
	if err := os.Mkdir(bd, 0o700); err != nil {
		return "", fmt.Errorf("gvisor: %w", err)
	}
	for _, p := range []string{d.rootfs(h), d.agentDir(h)} {
		if err := os.Mkdir(p, 0o700); err != nil {
			return fail(fmt.Errorf("gvisor: %w", err))
		}
	}
	// The same layout and ID shift as the checkpointed box, with a fresh
	// disk; then its files (copyTree keeps their stored owners).
	if err := d.newLayer(ctx, h, &m); err != nil {
		return fail(fmt.Errorf("gvisor: %w", err))
	}
	if err := os.Remove(d.rawUpper(h, &m)); err != nil {
		return fail(fmt.Errorf("gvisor: %w", err))
	}
	if err := copyTree(ctx, filepath.Join(dir, ckptUpper), d.rawUpper(h, &m)); err != nil {
		return fail(err)
	}
	mb, _ := json.MarshalIndent(&m, "", "  ")
	if err := writeFileAtomic(d.metaPath(h), mb); err != nil {
		return fail(fmt.Errorf("gvisor: %w", err))
	}
	// A networked box gets a network of its own (namespace, address,
	// policy, resolver, ports) before runsc restores it into it: gVisor
	// builds the restored sandbox's network from its namespace, so the
	// box never shares its source's address.
	if m.Network {
		if err := d.netUp(ctx, h, &m); err != nil {
			return fail(err)
		}
	}
	if err := d.restore(ctx, h, &m, filepath.Join(dir, ckptImage)); err != nil {
		return fail(err)
	}
	d.log.Debug("gvisor: restored", "handle", h, "box", spec.BoxID)
	return h, nil
}

// restore mounts the overlay, writes the bundle and runs runsc restore.
func (d *Driver) restore(ctx context.Context, h string, m *boxMeta, image string) error {
	if err := d.mountRoot(ctx, h, m); err != nil {
		return fmt.Errorf("gvisor: %w", err)
	}
	_ = os.Remove(filepath.Join(d.agentDir(h), agentSockName))
	cb, _ := json.MarshalIndent(d.bundleConfig(h, m), "", "  ")
	if err := writeFileAtomic(filepath.Join(d.boxDir(h), "config.json"), cb); err != nil {
		return fmt.Errorf("gvisor: %w", err)
	}
	logPath := filepath.Join(d.boxDir(h), "create.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("gvisor: %w", err)
	}
	defer logf.Close()
	d.rootMu.RLock()
	args := append(d.globalArgs(m), "restore", "--image-path="+image, "--detach", "--bundle="+d.boxDir(h), h)
	cmd := newCmd(d.runscPath, args, nil, logf, logf)
	start := time.Now()
	werr := runWithTimeout(cmd, checkpointTimeout)
	d.rootMu.RUnlock()
	d.log.DebugContext(ctx, "runsc restore", "handle", h, "dur", time.Since(start), "err", werr)
	if werr != nil {
		out, _ := os.ReadFile(logPath)
		return fmt.Errorf("gvisor: runsc restore: %w: %s: %w", werr, lastLines(string(out), 5), boxapi.ErrRuntime)
	}
	d.waitAgent(ctx, h)
	return nil
}

// holdWait bounds the wait for an agent to stop listening before a
// checkpoint.
const holdWait = 5 * time.Second

// holdAgent closes the driver's connection to the agent of h and asks the
// agent to stop listening (the hold file, see boxinit.AgentHold), waiting
// until its socket is gone: gVisor cannot checkpoint a socket bound on the
// host. release lets the agent listen again.
func (d *Driver) holdAgent(ctx context.Context, h string) (release func(), err error) {
	d.closeAgent(h)
	hold := filepath.Join(d.agentDir(h), filepath.Base(boxinit.AgentHold))
	if err := os.WriteFile(hold, nil, 0o600); err != nil {
		return nil, fmt.Errorf("gvisor: %w", err)
	}
	release = func() { _ = os.Remove(hold) }
	sock := filepath.Join(d.agentDir(h), agentSockName)
	deadline := time.Now().Add(holdWait)
	for {
		if _, err := os.Lstat(sock); errors.Is(err, fs.ErrNotExist) {
			return release, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			release()
			return nil, fmt.Errorf("gvisor: checkpoint: the box's agent did not stop listening (a box made before checkpoints, or its agent is broken): %w", boxapi.ErrConflict)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// runWithTimeout runs cmd, killing it after timeout.
func runWithTimeout(cmd *exec.Cmd, timeout time.Duration) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("timed out after %v", timeout)
	}
}

// lastLines returns the last n lines of s, trimmed.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// copyTree copies the directory src to dst (which must not exist) with
// owners, modes, xattrs and overlay whiteouts, sharing blocks (reflink)
// where the filesystem allows.
func copyTree(ctx context.Context, src, dst string) error {
	if _, err := os.Lstat(dst); err == nil {
		return fmt.Errorf("gvisor: copy to %s: %w", dst, fs.ErrExist)
	}
	cmd := exec.CommandContext(ctx, "cp", "-a", "--reflink=auto", "--", src, dst)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("gvisor: copy files: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}
