package qemu

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/driver/internal/boxnet"
	"github.com/boxrun/boxrun/sandbox"
)

var _ sandbox.Checkpointer = (*Driver)(nil)

// A checkpoint directory holds:
//
//	state      QEMU's migration stream (RAM and device state), zstd-compressed
//	           when zstd is installed (ckptMeta.Compression)
//	disk.img   a copy of the box's disk, of the same instant
//	box.json   ckptMeta: the box's state (shape, env, user, workdir) and
//	           what the restoring driver must match (QEMU, kernel, initramfs,
//	           accelerator); written last, so a directory without it holds
//	           no checkpoint
const (
	ckptState    = "state"
	ckptMetaFile = "box.json"
)

// ckptTimeout bounds the migration of one checkpoint.
const ckptTimeout = 5 * time.Minute

// ckptMeta is the box.json of a checkpoint.
type ckptMeta struct {
	Version     int      `json:"version"`
	State       boxState `json:"state"`
	Compression string   `json:"compression,omitempty"` // "zstd" or "" (raw)
	Host        ckptHost `json:"host"`
}

// ckptHost is what a VM restored from a checkpoint needs unchanged: the
// migration stream only loads into the same machine (QEMU build, devices,
// accelerator), and the guest's memory holds the kernel and agent it
// booted.
type ckptHost struct {
	QEMU      string `json:"qemu"`      // path, size and mtime of the binary
	Kernel    string `json:"kernel"`    // path, size and mtime
	Initramfs string `json:"initramfs"` // file name (agent and modules hash)
	Accel     string `json:"accel"`
	TSCKHz    int64  `json:"tsc_khz"`
}

// hostFacts is the ckptHost of d.
func (d *Driver) hostFacts() ckptHost {
	return ckptHost{QEMU: fileFact(d.qemu), Kernel: fileFact(d.kernel),
		Initramfs: filepath.Base(d.initrd), Accel: d.accel, TSCKHz: d.tscKHz}
}

func fileFact(p string) string {
	st, err := os.Stat(p)
	if err != nil {
		return p
	}
	return fmt.Sprintf("%s %d %d", p, st.Size(), st.ModTime().UnixNano())
}

// mismatch says how h (a checkpoint's) differs from d's, "" if not.
func (h ckptHost) mismatch(d ckptHost) string {
	var diffs []string
	add := func(what, was, now string) {
		if was != now {
			diffs = append(diffs, fmt.Sprintf("%s was %q, now %q", what, was, now))
		}
	}
	add("QEMU", h.QEMU, d.QEMU)
	add("guest kernel", h.Kernel, d.Kernel)
	add("initramfs (agent and modules)", h.Initramfs, d.Initramfs)
	add("accelerator", h.Accel, d.Accel)
	add("TSC kHz", fmt.Sprint(h.TSCKHz), fmt.Sprint(d.TSCKHz))
	return strings.Join(diffs, "; ")
}

// Checkpoint implements sandbox.Checkpointer: it pauses the box's VM,
// copies its disk, migrates its RAM and device state to dir/state (QMP
// migrate to a file), and then resumes the VM; without LeaveRunning it
// then stops it as Stop does (the guest writes its cached files back to
// its disk and powers off). The driver's connection to the agent
// is closed first; the next call reconnects (callers refuse a checkpoint
// while execs run). A box with a network is saved without it (its egress
// policy and port requests are kept): each restore gets its own. Refused:
// a box that is not running (ErrConflict) and a box with volumes, whose
// vhost-user-fs devices cannot migrate (ErrInvalid: a property of the box,
// not of the moment, hence VALIDATION_ERROR in the Manager).
func (d *Driver) Checkpoint(ctx context.Context, handle, dir string, opts sandbox.CheckpointOptions) (err error) {
	b, err := d.get(handle)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.running() {
		return fmt.Errorf("qemu: sandbox %s is not running: %w", handle, boxapi.ErrConflict)
	}
	if len(b.state.Volumes) > 0 {
		return fmt.Errorf("qemu: sandbox %s has volumes: virtiofs (vhost-user-fs) devices cannot be checkpointed: %w", handle, boxapi.ErrInvalid)
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return fmt.Errorf("qemu: checkpoint dir: %w", err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return fmt.Errorf("qemu: checkpoint dir: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	start := time.Now()
	// The agent's session ends here, so the saved agent waits for a new
	// connection (every restore makes one).
	if b.conn != nil {
		b.conn.Close()
		b.conn = nil
		time.Sleep(100 * time.Millisecond)
	}
	cctx, cancel := context.WithTimeout(ctx, ckptTimeout)
	defer cancel()
	qc, err := dialQMP(cctx, b.dir)
	if err != nil {
		return fmt.Errorf("qemu: checkpoint %s: %w: %w", handle, err, boxapi.ErrRuntime)
	}
	defer qc.Close()
	if _, err := qc.execute("stop", nil); err != nil {
		return fmt.Errorf("qemu: checkpoint %s: %w: %w", handle, err, boxapi.ErrRuntime)
	}
	migrated := false
	defer func() {
		if err != nil && !migrated {
			if _, cerr := qc.execute("cont", nil); cerr != nil {
				d.log.Warn("qemu: resume after failed checkpoint", "handle", handle, "err", cerr)
			}
		}
	}()
	// Paused, with its I/O drained: the disk is of the same instant as
	// the memory saved below.
	if err := copyFile(cctx, filepath.Join(b.dir, diskFile), filepath.Join(dir, diskFile)); err != nil {
		return err
	}
	diskDone := time.Since(start)
	comp, filter := "", "cat"
	if z, err := exec.LookPath("zstd"); err == nil {
		comp, filter = "zstd", shellQuote(z)+" -q -1 -T1 -c"
	}
	if err := migrateToFile(cctx, qc, filter, filepath.Join(dir, ckptState)); err != nil {
		return fmt.Errorf("qemu: checkpoint %s: %w: %w", handle, err, boxapi.ErrRuntime)
	}
	migrated = true
	m := ckptMeta{Version: 1, State: b.state, Compression: comp, Host: d.hostFacts()}
	m.State.PID, m.State.Net = 0, nil
	raw, _ := json.MarshalIndent(&m, "", "  ")
	if err := writeFileAtomic(filepath.Join(dir, ckptMetaFile), raw); err != nil {
		qc.execute("cont", nil)
		return fmt.Errorf("qemu: checkpoint %s: %w", handle, err)
	}
	d.log.Info("qemu: checkpoint", "handle", handle, "disk", diskDone, "took", time.Since(start), "leave_running", opts.LeaveRunning)
	// cont after a completed migration takes the disk back and runs the
	// vCPUs again.
	_, err = qc.execute("cont", nil)
	qc.Close()
	if opts.LeaveRunning {
		if err != nil {
			return fmt.Errorf("qemu: resume %s after checkpoint: %w: %w", handle, err, boxapi.ErrRuntime)
		}
		return nil
	}
	// Stopped as by Stop: the guest writes its cached files back to the
	// box's disk and powers off (a quit would lose them; the checkpoint
	// has them in its memory image).
	return d.stop(context.WithoutCancel(ctx), b)
}

// migrateFileWait bounds how long migrateToFile waits, after QEMU
// finished, for the filter to write the rest of the stream out.
const migrateFileWait = time.Minute

// migrateToFile migrates the VM of qc into file through the shell command
// filter (cat, or a compressor from stdin to stdout) and returns once file
// is whole. QEMU reports a migration completed when its last byte is in
// the pipe, while the filter may still be writing: so the filter writes a
// temporary file that the same command renames to file only after the
// filter exited, and this waits for that name.
func migrateToFile(ctx context.Context, qc *qmpClient, filter, file string) error {
	part := file + ".part"
	uri := "exec:" + filter + " > " + shellQuote(part) + " && mv " + shellQuote(part) + " " + shellQuote(file)
	if err := migrateTo(ctx, qc, uri); err != nil {
		os.Remove(part)
		return err
	}
	deadline := time.Now().Add(migrateFileWait)
	for {
		if _, err := os.Stat(file); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			os.Remove(part)
			return fmt.Errorf("migration to %s: the stream was not written out within %s", file, migrateFileWait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// migrateTo migrates the VM of qc to uri at full speed and waits until
// QEMU completed the migration (see migrateToFile for a file).
func migrateTo(ctx context.Context, qc *qmpClient, uri string) error {
	// The default bandwidth cap (32 MiB/s) is for live migration over a
	// network; a file takes what the disk gives.
	if _, err := qc.execute("migrate-set-parameters", map[string]any{"max-bandwidth": int64(1) << 40}); err != nil {
		return err
	}
	if _, err := qc.execute("migrate", map[string]any{"uri": uri}); err != nil {
		return err
	}
	for {
		raw, err := qc.execute("query-migrate", nil)
		if err != nil {
			return err
		}
		var st struct {
			Status string `json:"status"`
			Error  string `json:"error-desc"`
		}
		json.Unmarshal(raw, &st)
		switch st.Status {
		case "completed":
			return nil
		case "failed", "cancelled":
			return fmt.Errorf("migration %s: %s", st.Status, st.Error)
		}
		select {
		case <-ctx.Done():
			qc.execute("migrate_cancel", nil)
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Restore implements sandbox.Checkpointer: a new box (new handle, BoxID
// spec.BoxID) with its own copy of the checkpoint's disk, whose VM QEMU
// loads from the saved state (-incoming) and resumes; then the agent's
// setup gives it the time, fresh entropy and its hostname. The
// checkpoint's shape, env, user, workdir and egress policy are kept; a
// networked box gets a network of its own (a new tap and address, and new
// host ports unless spec.BoxID is the source's). A checkpoint made
// with another QEMU, guest kernel, initramfs or accelerator is refused
// with ErrInvalid, saying what changed; a directory without a checkpoint
// with ErrNotFound.
func (d *Driver) Restore(ctx context.Context, dir string, spec sandbox.Spec) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("qemu: %w", err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, ckptMetaFile))
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("qemu: checkpoint %s: %w", dir, boxapi.ErrNotFound)
	} else if err != nil {
		return "", fmt.Errorf("qemu: %w", err)
	}
	var m ckptMeta
	if err := json.Unmarshal(raw, &m); err != nil || m.Version != 1 {
		return "", fmt.Errorf("qemu: checkpoint %s: bad %s (%v): %w", dir, ckptMetaFile, err, boxapi.ErrInvalid)
	}
	if diff := m.Host.mismatch(d.hostFacts()); diff != "" {
		return "", fmt.Errorf("qemu: checkpoint %s was made for another VM setup (%s): %w", dir, diff, boxapi.ErrInvalid)
	}
	if m.Compression != "" && m.Compression != "zstd" {
		return "", fmt.Errorf("qemu: checkpoint %s: unknown compression %q: %w", dir, m.Compression, boxapi.ErrInvalid)
	}
	in := "exec:cat " + shellQuote(filepath.Join(dir, ckptState))
	if m.Compression == "zstd" {
		z, err := exec.LookPath("zstd")
		if err != nil {
			return "", fmt.Errorf("qemu: checkpoint %s is zstd-compressed and zstd is not installed: %w", dir, boxapi.ErrInvalid)
		}
		in = "exec:" + shellQuote(z) + " -q -d -c " + shellQuote(filepath.Join(dir, ckptState))
	}
	var rnd [8]byte
	rand.Read(rnd[:])
	handle := hex.EncodeToString(rnd[:])
	if m.State.Network && d.net == nil {
		return "", boxnet.Unavailable("qemu", d.netErr)
	}
	b := &box{handle: handle, dir: d.boxDir(handle), state: m.State}
	if m.State.Network && spec.BoxID != m.State.BoxID {
		// A new box (a restore, a fork) next to its source: host ports
		// of its own; a hibernated box resumed keeps its ports.
		b.state.Ports = slices.Clone(b.state.Ports)
		for i := range b.state.Ports {
			b.state.Ports[i].HostPort = 0
		}
	}
	b.state.Handle, b.state.BoxID, b.state.PID, b.state.Net = handle, spec.BoxID, 0, nil
	if err := os.Mkdir(b.dir, 0o700); err != nil {
		return "", fmt.Errorf("qemu: %w", err)
	}
	fail := func(err error) (string, error) {
		if nerr := d.netDown(ctx, b); nerr != nil {
			d.log.Warn("qemu: network cleanup after failed restore", "handle", handle, "err", nerr)
		}
		if rerr := d.removeDir(context.WithoutCancel(ctx), handle, b.dir); rerr != nil {
			d.log.Error("qemu: cleanup after failed restore", "handle", handle, "err", rerr)
		}
		return "", err
	}
	if err := b.save(); err != nil {
		return fail(fmt.Errorf("qemu: %w", err))
	}
	start := time.Now()
	if err := copyFile(ctx, filepath.Join(dir, diskFile), filepath.Join(b.dir, diskFile)); err != nil {
		return fail(err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	// A network of its own (tap, address, policy, resolver, ports): the
	// agent's setup moves the guest's NIC to its address.
	if err := d.netUp(ctx, b); err != nil {
		return fail(err)
	}
	if err := d.restore(ctx, b, in); err != nil {
		if b.conn != nil {
			b.conn.Close()
			b.conn = nil
		}
		return fail(fmt.Errorf("qemu: restore: %w; qemu log: %s", err, qemuLogTail(b.dir)))
	}
	d.mu.Lock()
	d.boxes[handle] = b
	d.mu.Unlock()
	d.log.Info("qemu: restored", "handle", handle, "box", spec.BoxID, "took", time.Since(start))
	return handle, nil
}

// copyFile copies the file src to dst (which must not exist), sparse, and
// sharing blocks (reflink) where the filesystem allows.
func copyFile(ctx context.Context, src, dst string) error {
	if _, err := os.Lstat(dst); err == nil {
		return fmt.Errorf("qemu: copy to %s: %w", dst, fs.ErrExist)
	}
	cmd := exec.CommandContext(ctx, "cp", "--reflink=auto", "--sparse=always", "--", src, dst)
	if out, err := cmd.CombinedOutput(); err != nil {
		return ctxErr(ctx, fmt.Errorf("qemu: copy %s: %w: %s", filepath.Base(src), err, strings.TrimSpace(string(out))))
	}
	return nil
}

// writeFileAtomic writes b to p through a temporary file and a rename.
func writeFileAtomic(p string, b []byte) error {
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// qemuLogTail returns the end of the box's qemu.log, for error messages.
func qemuLogTail(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, qemuLog))
	if err != nil {
		return ""
	}
	if len(b) > 1000 {
		b = b[len(b)-1000:]
	}
	return strings.TrimSpace(string(b))
}
