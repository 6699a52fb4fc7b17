package qemu

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// guestModules returns the guest kernel modules the agent needs, by name.
// Required ones must exist (as modules or built in); optional ones are
// loaded when present.
func guestModules() (required, optional []string) {
	return []string{"virtio_mmio", "virtio_console", "virtio_blk", "ext4"}, []string{"virtiofs", "virtio_net"}
}

// resolveModules returns the module files (relative to modDir) to load, in
// dependency order, from modDir/modules.dep.
func resolveModules(modDir string) ([]string, error) {
	deps := map[string][]string{} // module name → its dependency files
	files := map[string]string{}  // module name → file
	f, err := os.Open(filepath.Join(modDir, "modules.dep"))
	if err != nil {
		return nil, fmt.Errorf("kernel modules: %w: %w", err, ErrUnsupported)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		file, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		name := moduleName(file)
		files[name] = file
		deps[name] = strings.Fields(rest)
	}
	builtin := map[string]bool{}
	if b, err := os.ReadFile(filepath.Join(modDir, "modules.builtin")); err == nil {
		for _, l := range strings.Fields(string(b)) {
			builtin[moduleName(l)] = true
		}
	}
	requiredModules, optionalModules := guestModules()
	var order []string
	seen := map[string]bool{}
	var visit func(name string)
	visit = func(name string) {
		if seen[name] {
			return
		}
		seen[name] = true
		for _, d := range deps[name] {
			visit(moduleName(d))
		}
		order = append(order, files[name])
	}
	for _, m := range requiredModules {
		switch {
		case files[m] != "":
			visit(m)
		case builtin[m]:
		default:
			return nil, fmt.Errorf("kernel module %s not found in %s: %w", m, modDir, ErrUnsupported)
		}
	}
	for _, m := range optionalModules {
		if files[m] != "" {
			visit(m)
		}
	}
	return order, nil
}

// moduleName turns "kernel/fs/fuse/virtio-fs.ko.xz" into "virtio_fs".
func moduleName(file string) string {
	base := path.Base(file)
	if i := strings.Index(base, ".ko"); i >= 0 {
		base = base[:i]
	}
	return strings.ReplaceAll(base, "-", "_")
}

// buildInitramfs writes (once per content) <dir>/initramfs-<hash>.cpio: the
// agent as /init and the modules in /modules with their load order in
// /modules/order. It returns the file's path.
func buildInitramfs(dir, agent, modDir string) (string, error) {
	mods, err := resolveModules(modDir)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, p := range append([]string{agent}, prefixAll(modDir, mods)...) {
		st, err := os.Stat(p)
		if err != nil {
			return "", fmt.Errorf("initramfs: %w", err)
		}
		fmt.Fprintf(h, "%s %d %d\n", p, st.Size(), st.ModTime().UnixNano())
	}
	out := filepath.Join(dir, "initramfs-"+hex.EncodeToString(h.Sum(nil))[:16]+".cpio")
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	tmp, err := os.CreateTemp(dir, ".initramfs-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	w := &cpioWriter{w: bufio.NewWriter(tmp)}
	w.dir("dev")
	w.dir("proc")
	w.dir("sys")
	w.dir("mnt")
	w.dir("modules")
	if err := w.fileFrom("init", agent, 0o755); err != nil {
		return "", err
	}
	var names []string
	for _, m := range mods {
		name := path.Base(m)
		names = append(names, name)
		if err := w.fileFrom("modules/"+name, filepath.Join(modDir, m), 0o644); err != nil {
			return "", err
		}
	}
	w.file("modules/order", []byte(strings.Join(names, "\n")+"\n"), 0o644)
	w.trailer()
	if err := w.flush(); err != nil {
		return "", fmt.Errorf("initramfs: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return "", err
	}
	// Drop initramfs files of older agents or kernels.
	old, _ := filepath.Glob(filepath.Join(dir, "initramfs-*.cpio"))
	for _, o := range old {
		if o != out {
			os.Remove(o)
		}
	}
	return out, nil
}

func prefixAll(dir string, rel []string) []string {
	out := make([]string, len(rel))
	for i, r := range rel {
		out[i] = filepath.Join(dir, r)
	}
	return out
}

// cpioWriter writes a newc ("070701") cpio archive, the format the kernel
// unpacks as initramfs. The first error sticks.
type cpioWriter struct {
	w   *bufio.Writer
	ino int
	n   int64
	err error
}

func (c *cpioWriter) write(p []byte) {
	if c.err != nil {
		return
	}
	_, c.err = c.w.Write(p)
	c.n += int64(len(p))
}

func (c *cpioWriter) pad() {
	if r := c.n % 4; r != 0 {
		c.write(make([]byte, 4-r))
	}
}

func (c *cpioWriter) header(name string, mode uint32, size int64) {
	c.ino++
	nlink := 1
	if mode&0o170000 == 0o040000 {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		c.ino, mode, 0, 0, nlink, 0, size, 0, 0, 0, 0, len(name)+1, 0)
	c.write([]byte(hdr))
	c.write(append([]byte(name), 0))
	c.pad()
}

func (c *cpioWriter) dir(name string) { c.header(name, 0o040755, 0) }

func (c *cpioWriter) file(name string, data []byte, perm uint32) {
	c.header(name, 0o100000|perm, int64(len(data)))
	c.write(data)
	c.pad()
}

func (c *cpioWriter) fileFrom(name, src string, perm uint32) error {
	f, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	c.header(name, 0o100000|perm, st.Size())
	if c.err == nil {
		var n int64
		n, c.err = io.Copy(c.w, f)
		c.n += n
		if c.err == nil && n != st.Size() {
			c.err = fmt.Errorf("initramfs: %s changed while copying", src)
		}
	}
	c.pad()
	return c.err
}

func (c *cpioWriter) trailer() { c.header("TRAILER!!!", 0, 0) }

func (c *cpioWriter) flush() error {
	if c.err != nil {
		return c.err
	}
	return c.w.Flush()
}
