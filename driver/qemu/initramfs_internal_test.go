package qemu

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/boxrun/boxrun/internal/testenv"
)

// readCpio parses a newc archive into name → content (directories map to
// "<dir>").
func readCpio(t *testing.T, b []byte) map[string]string {
	t.Helper()
	out := map[string]string{}
	pad := func(n int) int { return (n + 3) &^ 3 }
	off := 0
	for {
		if off+110 > len(b) || string(b[off:off+6]) != "070701" {
			t.Fatalf("bad header at %d", off)
		}
		field := func(i int) int {
			v, err := strconv.ParseUint(string(b[off+6+8*i:off+14+8*i]), 16, 32)
			if err != nil {
				t.Fatal(err)
			}
			return int(v)
		}
		mode, size, namesize := field(1), field(6), field(11)
		name := string(b[off+110 : off+110+namesize-1])
		off = pad(off + 110 + namesize)
		if name == "TRAILER!!!" {
			return out
		}
		if mode&0o170000 == 0o040000 {
			out[name] = "<dir>"
		} else {
			out[name] = string(b[off : off+size])
		}
		off = pad(off + size)
	}
}

func TestBuildInitramfs(t *testing.T) {
	modDir := t.TempDir()
	dep := "kernel/drivers/virtio/virtio_mmio.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko\n" +
		"kernel/drivers/virtio/virtio.ko:\n" +
		"kernel/drivers/virtio/virtio_ring.ko: kernel/drivers/virtio/virtio.ko\n" +
		"kernel/drivers/char/virtio_console.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko\n" +
		"kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko\n" +
		"kernel/fs/fuse/fuse.ko:\n" +
		"kernel/fs/fuse/virtiofs.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko kernel/fs/fuse/fuse.ko\n" +
		"kernel/fs/other/unused.ko:\n"
	os.WriteFile(filepath.Join(modDir, "modules.dep"), []byte(dep), 0o644)
	os.WriteFile(filepath.Join(modDir, "modules.builtin"), []byte("kernel/fs/ext4/ext4.ko\n"), 0o644)
	for _, l := range strings.Split(strings.TrimSpace(dep), "\n") {
		f, _, _ := strings.Cut(l, ":")
		os.MkdirAll(filepath.Join(modDir, filepath.Dir(f)), 0o755)
		os.WriteFile(filepath.Join(modDir, f), []byte("module "+filepath.Base(f)), 0o644)
	}
	dir := t.TempDir()
	agent := filepath.Join(dir, "agent")
	os.WriteFile(agent, []byte("agent binary"), 0o755)

	path, err := buildInitramfs(dir, agent, modDir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	files := readCpio(t, b)
	if got := files["init"]; got != "agent binary" {
		t.Errorf("init = %q", got)
	}
	order := strings.Fields(files["modules/order"])
	want := []string{"virtio.ko", "virtio_ring.ko", "virtio_mmio.ko", "virtio_console.ko", "virtio_blk.ko", "fuse.ko", "virtiofs.ko"}
	if !slices.Equal(order, want) {
		t.Errorf("module order %v, want %v", order, want)
	}
	for _, m := range want {
		if files["modules/"+m] != "module "+m {
			t.Errorf("module %s: %q", m, files["modules/"+m])
		}
	}
	if _, ok := files["modules/unused.ko"]; ok {
		t.Error("unneeded module included")
	}
	// Same inputs: same file, not rebuilt.
	if again, err := buildInitramfs(dir, agent, modDir); err != nil || again != path {
		t.Errorf("rebuild: %s, %v; want %s", again, err, path)
	}
	// A missing required module is ErrUnsupported.
	os.WriteFile(filepath.Join(modDir, "modules.builtin"), nil, 0o644)
	if _, err := resolveModules(modDir); err == nil {
		t.Error("resolveModules without ext4: no error")
	}
}

func TestMergeEnv(t *testing.T) {
	got := mergeEnv([]string{"PATH=/bin", "A=1", "B=2"}, []string{"A=x", "C=3"})
	if want := []string{"PATH=/bin", "A=x", "B=2", "C=3"}; !slices.Equal(got, want) {
		t.Errorf("mergeEnv = %v, want %v", got, want)
	}
}

func TestKernelVersion(t *testing.T) {
	if got := kernelVersion("/boot/vmlinuz-6.1.0-56-cloud-amd64"); got != "6.1.0-56-cloud-amd64" {
		t.Errorf("kernelVersion = %q", got)
	}
	names := []string{"/boot/vmlinuz-6.10.0-1-amd64", "/boot/vmlinuz-6.9.0-3-amd64", "/boot/vmlinuz-6.10.0-12-amd64"}
	slices.SortFunc(names, compareVersions)
	if names[2] != "/boot/vmlinuz-6.10.0-12-amd64" {
		t.Errorf("newest kernel: %v", names)
	}
}

func TestHelloMagicNotInAgentSource(t *testing.T) {
	// The magic must not appear literally in the agent or proto sources,
	// hence (barring the compiler folding it) not in the agent binary.
	for _, dir := range []string{"agent", "proto"} {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			src, _ := os.ReadFile(filepath.Join(dir, e.Name()))
			if bytes.Contains(src, []byte("BOXRUN-HELLO")) {
				t.Errorf("%s/%s contains the hello magic", dir, e.Name())
			}
		}
	}
}

// TestProbeBoot checks the mechanics of the accelerator test boot with
// TCG (hardware KVM is not available on the CI machines).
func TestProbeBoot(t *testing.T) {
	if _, err := FindKernel(); err != nil {
		testenv.Skip(t, "no guest kernel")
	}
	agent := filepath.Join(t.TempDir(), AgentName)
	if err := BuildAgent(t.Context(), agent); err != nil {
		t.Fatal(err)
	}
	d, err := New(Config{Dir: t.TempDir(), Agent: agent, Accel: AccelTCG})
	if errors.Is(err, ErrUnsupported) {
		testenv.Skip(t, err.Error())
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := d.probeBoot(t.Context(), AccelTCG, 2*time.Minute); err != nil {
		t.Fatalf("probe boot: %v", err)
	}
	if _, err := os.Stat(filepath.Join(d.dir, "probe")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("probe dir left: %v", err)
	}
	if d.Accel() != AccelTCG {
		t.Errorf("Accel = %s", d.Accel())
	}
	if got := d.Describe(); got["accel"] != AccelTCG || got["kernel"] == "" {
		t.Errorf("Describe = %v", got)
	}
}
