package qemu

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/boxrun/boxrun/agentproto"
)

// Snapshot boot. A cold boot under TCG takes seconds, mostly kernel init.
// So the first boot of each shape (accelerator, kernel, initramfs, CPUs,
// memory, disk size) boots a template VM with an empty disk of that size
// until its agent answers, migrates it to a file, and quits it; every box
// of that shape then starts with -incoming from that file, with its own
// disk behind the same device. The agent drops the block cache before it
// mounts the disk (the template read the empty one), and the setup gives
// it the time and fresh entropy (every clone starts with the same RNG
// state). Boxes with volumes boot cold (their devices differ). Any failure
// falls back to a cold boot.

// templateKey names the snapshot of the shape of b.
func (d *Driver) templateKey(b *box, diskBytes int64) string {
	h := sha256.New()
	fmt.Fprintf(h, "v1\n%s\n%s\n%s\n%s\n%d\n%d\n%d\n%d\n", d.qemu, d.accel, d.kernel, d.initrd,
		b.state.CPU, b.state.MemoryMB, diskBytes, d.tscKHz)
	if b.state.Network {
		h.Write([]byte("net\n")) // a NIC is one more device
	}
	for _, f := range []string{d.qemu, d.kernel} {
		if st, err := os.Stat(f); err == nil {
			fmt.Fprintf(h, "%d %d\n", st.Size(), st.ModTime().UnixNano())
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

func (d *Driver) snapPath(key string) string {
	return filepath.Join(d.dir, "templates", key+".snap")
}

// ensureTemplate returns the snapshot file for b's shape, making it first
// if needed. Builds are serialized.
func (d *Driver) ensureTemplate(ctx context.Context, b *box, diskBytes int64) (string, error) {
	key := d.templateKey(b, diskBytes)
	snap := d.snapPath(key)
	d.tmplMu.Lock()
	defer d.tmplMu.Unlock()
	if err := d.tmplFailed[key]; err != nil {
		return "", err
	}
	if _, err := os.Stat(snap); err == nil {
		return snap, nil
	}
	start := time.Now()
	if err := d.buildTemplate(ctx, b, diskBytes, key, snap); err != nil {
		if ctx.Err() == nil {
			d.tmplFailed[key] = err // do not pay for a failing build at every boot
		}
		return "", err
	}
	d.log.Info("qemu: template snapshot made", "key", key, "took", time.Since(start))
	return snap, nil
}

func (d *Driver) buildTemplate(ctx context.Context, b *box, diskBytes int64, key, snap string) (err error) {
	t := &box{handle: "tmpl-" + key, dir: filepath.Join(d.dir, "templates", key)}
	t.state = boxState{CPU: b.state.CPU, MemoryMB: b.state.MemoryMB}
	t.state.Network = b.state.Network // a NIC on a hub port that goes nowhere
	killBox(ctx, t.handle)
	os.RemoveAll(t.dir)
	if err := os.MkdirAll(t.dir, 0o700); err != nil {
		return err
	}
	defer func() {
		killBox(context.WithoutCancel(ctx), t.handle)
		os.RemoveAll(t.dir)
		if err != nil {
			os.Remove(snap + ".part")
		}
	}()
	disk, err := os.Create(filepath.Join(t.dir, diskFile))
	if err != nil {
		return err
	}
	err = disk.Truncate(diskBytes)
	disk.Close()
	if err != nil {
		return err
	}
	if err := d.launchMode(ctx, t, false); err != nil {
		return err
	}
	bctx, cancel := context.WithTimeout(ctx, bootTimeout)
	defer cancel()
	var conn *agentproto.Conn
	for { // QEMU may not have made its socket yet
		if conn, err = dialAgent(bctx, t.dir); err == nil || bctx.Err() != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("template: %w; console: %s", err, consoleTail(t.dir))
	}
	_, err = call(bctx, conn, &agentproto.Request{Op: agentproto.OpPing})
	conn.Close()
	if err != nil {
		return fmt.Errorf("template: %w", err)
	}
	time.Sleep(200 * time.Millisecond) // let the agent see the disconnect and go idle
	qc, err := dialQMP(bctx, t.dir)
	if err != nil {
		return err
	}
	defer qc.Close()
	if err := migrateToFile(bctx, qc, "cat", snap); err != nil {
		return fmt.Errorf("template: %w", err)
	}
	qc.execute("quit", nil)
	return nil
}

// shellQuote quotes s for /bin/sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// bootSnapshot starts b from the template of its shape. Callers hold b.mu
// and fall back to a cold boot on error.
func (d *Driver) bootSnapshot(ctx context.Context, b *box) error {
	st, err := os.Stat(filepath.Join(b.dir, diskFile))
	if err != nil {
		return err
	}
	snap, err := d.ensureTemplate(ctx, b, st.Size())
	if err != nil {
		return fmt.Errorf("template: %w", err)
	}
	err = d.restore(ctx, b, "exec:cat "+shellQuote(snap))
	if err != nil && ctx.Err() == nil {
		// Drop the snapshot: it is made again at the next boot, once;
		// after a second failure this shape boots cold.
		d.tmplMu.Lock()
		key := d.templateKey(b, st.Size())
		if d.tmplRetried[key] {
			d.tmplFailed[key] = fmt.Errorf("snapshot restore failed twice: %w", err)
		} else {
			d.tmplRetried[key] = true
			os.Remove(snap)
		}
		d.tmplMu.Unlock()
	}
	return err
}

// restore launches b's VM from the migration stream at the -incoming URI
// in, resumes it and sets it up. Callers hold b.mu.
func (d *Driver) restore(ctx context.Context, b *box, in string) error {
	start := time.Now()
	if err := d.launch(ctx, b, "-incoming", in); err != nil {
		return err
	}
	if err := b.save(); err != nil {
		return err
	}
	launched := time.Since(start)
	if err := resume(ctx, b.dir); err != nil {
		return err
	}
	resumed := time.Since(start)
	err := d.connect(ctx, b)
	d.log.Debug("qemu: restore", "handle", b.handle, "launch", launched, "resume", resumed, "ready", time.Since(start), "err", err)
	return err
}

// pruneTemplates kills template VMs and removes partial snapshots that a
// crash during a template build left behind.
func (d *Driver) pruneTemplates(ctx context.Context) error {
	d.tmplMu.Lock()
	defer d.tmplMu.Unlock()
	dir := filepath.Join(d.dir, "templates")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		switch {
		case e.IsDir():
			if err := killBox(ctx, "tmpl-"+e.Name()); err != nil {
				return err
			}
			os.RemoveAll(p)
		case strings.HasSuffix(e.Name(), ".tmp"):
			os.Remove(p)
		}
	}
	return nil
}

// resume waits for the incoming migration to finish and starts the vCPUs:
// the restored VM comes up paused.
func resume(ctx context.Context, dir string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	qc, err := dialQMP(ctx, dir)
	if err != nil {
		return err
	}
	defer qc.Close()
	for {
		raw, err := qc.execute("query-status", nil)
		if err != nil {
			return err
		}
		var st struct {
			Status string `json:"status"`
		}
		json.Unmarshal(raw, &st)
		switch st.Status {
		case "running":
			return nil
		case "inmigrate":
		case "paused", "postmigrate", "prelaunch":
			if _, err := qc.execute("cont", nil); err != nil {
				return err
			}
		default:
			return fmt.Errorf("restored VM is %s", st.Status)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("restore: %w", ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// entropy returns fresh random bytes for the guest.
func entropy() []byte {
	b := make([]byte, 64)
	rand.Read(b)
	return b
}
