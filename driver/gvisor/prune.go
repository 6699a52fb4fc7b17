package gvisor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/boxrun/boxrun/driver/gvisor/boxinit"
	"github.com/boxrun/boxrun/internal/mountutil"
)

// Prune removes every box whose handle is not in keep, with all its host
// resources, and cleans up after crashes: sandboxes whose processes died
// (kept boxes become stopped, their files stay), runsc state files, locks
// and sockets without a box, stray runsc processes, leftover cgroups,
// overlay mounts, and runsc's null-netns mount when no sandbox is left.
//
// Prune works on a closed driver too: cleanup is always allowed.
func (d *Driver) Prune(ctx context.Context, keep []string) error {
	keepSet := map[string]bool{}
	for _, h := range keep {
		keepSet[h] = true
	}
	var errs []error

	// 1. Box directories.
	ents, err := os.ReadDir(d.boxesDir)
	if err != nil {
		return fmt.Errorf("gvisor: prune: %w", err)
	}
	for _, e := range ents {
		h := e.Name()
		if !validHandle(h) {
			errs = append(errs, d.removeStrayDir(filepath.Join(d.boxesDir, h)))
			continue
		}
		unlock := d.lock(h)
		switch {
		case !keepSet[h]:
			errs = append(errs, d.destroy(ctx, h))
		case !d.running(h):
			m, err := d.readMeta(h)
			if err != nil {
				m = nil
			}
			errs = append(errs, d.teardown(ctx, h, m))
		}
		unlock()
	}

	// 2. runsc state, locks and sockets of sandboxes with no live kept box.
	live := map[string]bool{}
	for h := range keepSet {
		if d.exists(h) && d.running(h) {
			live[h] = true
		}
	}
	if ents, err := os.ReadDir(d.runDir); err == nil {
		for _, e := range ents {
			id := runscFileID(e.Name())
			if id == "" || live[id] {
				continue
			}
			unlock := d.lock(id)
			errs = append(errs, d.teardown(ctx, id, nil))
			unlock()
		}
	}

	// 3. Stray runsc processes (create, exec, gofer, sandbox) of this root.
	d.killStraysExcept(live)

	// 4. Mounts under Dir that no live box owns.
	if mounts, err := mountutil.Under(d.dir); err == nil {
		for _, mp := range mounts {
			if mp == filepath.Join(d.runDir, "null-netns") {
				continue
			}
			// Every mount of a live box stays: its overlay (rootfs) and, for
			// a box with its own disk and ID shift, the disk, the ID-mapped
			// layer and volumes under it. (Detaching a live box's disk
			// broke checkpoints after a restart, and a later remount of
			// the same image would have mounted one ext4 twice.)
			rel, _ := filepath.Rel(d.boxesDir, mp)
			if h, rest, _ := strings.Cut(rel, string(filepath.Separator)); live[h] && rest != "" {
				continue
			}
			errs = append(errs, mountutil.Unmount(mp))
		}
	}
	d.releaseNullNetNS()
	// 5. Box networks (namespaces, links, nftables tables) of no live box.
	if d.net != nil {
		errs = append(errs, d.net.Prune(ctx, live))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("gvisor: prune: %w", err)
	}
	return nil
}

// runscFileID returns the container ID a file in the runsc root belongs to
// ("" for other files).
func runscFileID(name string) string {
	switch {
	case strings.HasPrefix(name, "runsc-") && strings.HasSuffix(name, ".sock"):
		return strings.TrimSuffix(strings.TrimPrefix(name, "runsc-"), ".sock")
	case strings.HasSuffix(name, ".state"), strings.HasSuffix(name, ".lock"):
		sid, _, ok := strings.Cut(name, "_sandbox:")
		if ok {
			return sid
		}
	}
	return ""
}

// removeStrayDir removes a directory in boxes/ that is not a box, after
// unmounting anything below it.
func (d *Driver) removeStrayDir(dir string) error {
	if err := mountutil.UnmountUnder(dir); err != nil {
		return fmt.Errorf("gvisor: %w", err)
	}
	return os.RemoveAll(dir)
}

// killStraysExcept SIGKILLs every process of this driver's runsc root that
// belongs to no box in live, and waits a moment for them to go.
func (d *Driver) killStraysExcept(live map[string]bool) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	root := []byte("--root=" + d.runDir)
	self := os.Getpid()
	killed := 0
	for _, e := range ents {
		pid := atoiPositive(e.Name())
		if pid <= 0 || pid == self {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(append(cmdline, 0), append(root, 0)) {
			continue
		}
		owned := false
		for h := range live {
			if bytes.Contains(cmdline, []byte(h)) {
				owned = true
				break
			}
		}
		if owned {
			continue
		}
		if p, err := os.FindProcess(pid); err == nil && p.Kill() == nil {
			killed++
		}
	}
	if killed > 0 {
		time.Sleep(50 * time.Millisecond)
	}
}

// stopInterruptedCheckpoints stops every box whose checkpoint a crash
// interrupted (its agent hold file is still there): runsc had paused it
// and its sandbox may still be saving itself, then stop (a checkpoint
// that does not leave the box running ends the sandbox when the save is
// done), so its memory state is unknown. The save is abandoned (the
// Manager removes the unfinished snapshot) and the box is stopped with
// its files, which the pause kept consistent: Start boots it afresh.
// New calls it before the Manager looks at sandbox states.
func (d *Driver) stopInterruptedCheckpoints(ctx context.Context) {
	ents, err := os.ReadDir(d.boxesDir)
	if err != nil {
		return
	}
	for _, e := range ents {
		h := e.Name()
		if !validHandle(h) {
			continue
		}
		hold := filepath.Join(d.agentDir(h), filepath.Base(boxinit.AgentHold))
		if _, err := os.Lstat(hold); err != nil {
			continue
		}
		unlock := d.lock(h)
		m, err := d.readMeta(h)
		if err != nil {
			m = nil
		}
		// teardown kills every process of h, the runsc checkpoint too.
		if err := d.teardown(ctx, h, m); err != nil {
			d.log.Warn("gvisor: stop a box whose checkpoint was interrupted", "handle", h, "err", err)
		}
		if err := os.Remove(hold); err != nil && !errors.Is(err, fs.ErrNotExist) {
			d.log.Warn("gvisor: remove an agent hold file", "handle", h, "err", err)
		}
		unlock()
		d.log.Warn("gvisor: stopped a box whose checkpoint a crash interrupted", "handle", h)
	}
}
