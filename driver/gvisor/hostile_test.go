package gvisor_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/driver/gvisor"
	"github.com/boxrun/boxrun/internal/testenv"
	"github.com/boxrun/boxrun/sandbox"
)

// TestHostile_RootIsNotHostRoot: box root writes a setuid-root program, a
// file chowned to another box user, a directory and a device node into a
// read-write volume given to the box range and into its own layer. On the
// host none of it belongs to root: box ID n is stored as Limits().IDBase+n,
// through ID-mapped nosuid,nodev mounts (volumes: volume_ids_test.go has
// volumes of an ordinary user's and of host root's).
func TestHostile_RootIsNotHostRoot(t *testing.T) {
	d, dir, base := shiftedDriver(t)
	// The host uid that box ID n is stored as.
	host := func(n uint32) uint32 { return base + n }
	vol := t.TempDir()
	if err := os.Chown(vol, int(host(0)), int(host(0))); err != nil {
		t.Fatal(err)
	}
	img := &sandbox.Image{Ref: "busybox", Rootfs: busyboxRootfs(t)}
	h := create(t, d, sandbox.Spec{BoxID: "hostile-ids", Image: img, Volumes: []boxapi.Volume{
		{HostPath: vol, GuestPath: "/vol"},
	}})
	script := `set -e
cp /bin/busybox /vol/suid && chmod 4755 /vol/suid
cp /bin/busybox /suid && chmod 4755 /suid
mkdir /vol/dir
echo x > /vol/other && chown 1000:1000 /vol/other
echo x > /other && chown 1000:1000 /other
echo changed >> /etc/passwd
mknod /vol/null c 1 3 2>/dev/null || true
mknod /null c 1 3 2>/dev/null || true
stat -c '%u:%g' /vol/suid /vol/other /suid /etc/passwd
grep -E ' /vol ' /proc/mounts
`
	out, errOut, code := run(t, d, h, nil, "sh", "-c", script)
	if code != 0 {
		t.Fatalf("script: exit %d\n%s%s", code, out, errOut)
	}
	lines := strings.Split(out, "\n")
	if len(lines) < 4 || lines[0] != "0:0" || lines[1] != "1000:1000" || lines[2] != "0:0" || lines[3] != "0:0" {
		t.Errorf("owners seen in the box: %q, want box root's and 1000's", out)
	}
	// gVisor shows nosuid (it makes no device nodes on host files
	// either); the host side of the volume is idmapped,nosuid,nodev.
	for _, l := range lines[4:] {
		if strings.Contains(l, " /vol ") && !strings.Contains(l, "nosuid") {
			t.Errorf("volume mount in the box without nosuid: %q", l)
		}
	}
	checkHostMount(t, filepath.Join(dir, "boxes", h, "vols", "0"), "rw")
	upper := filepath.Join(dir, "boxes", h, "disk", "upper")
	checkOwner(t, filepath.Join(vol, "suid"), host(0))
	checkOwner(t, filepath.Join(vol, "dir"), host(0))
	checkOwner(t, filepath.Join(vol, "other"), host(1000))
	checkOwner(t, filepath.Join(upper, "suid"), host(0))
	checkOwner(t, filepath.Join(upper, "other"), host(1000))
	checkOwner(t, filepath.Join(upper, "etc", "passwd"), host(0))
	for _, p := range []string{filepath.Join(vol, "null"), filepath.Join(upper, "null")} {
		if st, err := os.Lstat(p); err == nil && st.Mode()&(os.ModeDevice|os.ModeCharDevice) != 0 {
			t.Errorf("a device node from the box on the host: %s %v", p, st.Mode())
		}
	}
	// Nothing under the box dir or the volume is root's but what the
	// driver made itself.
	noHostRootFiles(t, vol, upper)
}

// checkOwner fails t unless the host file p belongs to want:want, and in
// any case when it is a setuid or setgid file of host root's.
func checkOwner(t *testing.T, p string, want uint32) {
	t.Helper()
	st, err := os.Lstat(p)
	if err != nil {
		t.Errorf("%s: %v", p, err)
		return
	}
	sys := st.Sys().(*syscall.Stat_t)
	if sys.Uid != want || sys.Gid != want {
		t.Errorf("%s on the host: owner %d:%d, want %d:%d", p, sys.Uid, sys.Gid, want, want)
	}
	if sys.Uid == 0 && st.Mode()&os.ModeSetuid != 0 || sys.Gid == 0 && st.Mode()&os.ModeSetgid != 0 {
		t.Errorf("%s is a setuid/setgid-root file on the host (mode %v)", p, st.Mode())
	}
}

// noHostRootFiles fails t for any file under the roots that belongs to
// host root (user or group).
func noHostRootFiles(t *testing.T, roots ...string) {
	t.Helper()
	for _, root := range roots {
		filepath.Walk(root, func(p string, st os.FileInfo, err error) error {
			if sys, ok := st.Sys().(*syscall.Stat_t); err == nil && ok && (sys.Uid == 0 || sys.Gid == 0) {
				t.Errorf("host-root file written by the box: %s (%d:%d)", p, sys.Uid, sys.Gid)
			}
			return nil
		})
	}
}

// checkHostMount fails t unless the host mount at target is ID-mapped,
// nosuid, nodev and mode ("rw" or "ro").
func checkHostMount(t *testing.T, target, mode string) {
	t.Helper()
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(mi), "\n") {
		if f := strings.Fields(l); len(f) > 5 && f[4] == target {
			opts := "," + f[5] + ","
			for _, o := range []string{mode, "nosuid", "nodev", "idmapped"} {
				if !strings.Contains(opts, ","+o+",") {
					t.Errorf("host mount of a volume at %s: %q, want %s,idmapped,nosuid,nodev", target, f[5], mode)
				}
			}
			return
		}
	}
	t.Errorf("no host mount at %s", target)
}

// TestHostile_IDBaseBad: a base whose range does not fit is refused.
func TestHostile_IDBaseBad(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Skip(t, "Config.IDBase is ignored rootless")
	}
	_, err := gvisor.New(gvisor.Config{Dir: filepath.Join(t.TempDir(), "g"), IDBase: 1<<32 - 1})
	if !errors.Is(err, boxapi.ErrInvalid) {
		t.Fatalf("IDBase 2^32-1: %v, want ErrInvalid", err)
	}
}

// TestHostile_Disk: a box with a 1 GiB disk that writes 1.5 GiB gets ENOSPC,
// the host's usage stays about 1 GiB, df in the box shows the box's size,
// writes work again after rm, the files survive a restart, and removing
// the box (or pruning it after a crash of the host process) leaves no
// mount and no loop device.
func TestHostile_Disk(t *testing.T) {
	d, dir := newDriver(t)
	if !d.Limits().Disk {
		if d.Limits().Rootless {
			testenv.Skip(t, "rootless: disk sizes are not enforced (no loop mounts)")
		}
		testenv.Skip(t, "disk sizes not enforced here (mkfs.ext4, mount or loop devices missing)")
	}
	img := &sandbox.Image{Ref: "busybox", Rootfs: busyboxRootfs(t)}
	h := create(t, d, sandbox.Spec{BoxID: "hostile-disk", Image: img, DiskSizeGB: 1})
	out, _, code := run(t, d, h, nil, "df", "-k", "/")
	if f := strings.Fields(out); code != 0 || len(f) < 9 {
		t.Fatalf("df: exit %d %q", code, out)
	} else if kb, _ := strconv.ParseInt(f[8], 10, 64); kb < 900<<10 || kb > 1<<20 {
		t.Errorf("df in the box: %d KiB total, want about 1 GiB\n%s", kb, out)
	}
	out, errOut, code := run(t, d, h, nil, "sh", "-c", "dd if=/dev/zero of=/big bs=1M count=1536; echo rc=$?; sync")
	if !strings.Contains(out, "rc=1") || !strings.Contains(errOut, "No space left on device") {
		t.Errorf("writing 1.5 GiB into a 1 GiB box: %q %q (exit %d), want ENOSPC", out, errOut, code)
	}
	imgPath := filepath.Join(dir, "boxes", h, "disk.img")
	st, err := os.Stat(imgPath)
	if err != nil {
		t.Fatal(err)
	}
	if used := st.Sys().(*syscall.Stat_t).Blocks * 512; used > 1100<<20 {
		t.Errorf("host usage of the box's disk: %d MiB, want at most 1100", used>>20)
	}
	if loopsOf(t, dir) != 1 {
		t.Errorf("loop devices of the driver: %d, want 1", loopsOf(t, dir))
	}
	if _, errOut, code := run(t, d, h, nil, "sh", "-c", "rm /big && dd if=/dev/zero of=/small bs=1M count=100 && echo kept > /kept"); code != 0 {
		t.Fatalf("write after rm: exit %d %q", code, errOut)
	}
	ctx := context.Background()
	if err := d.Stop(ctx, h); err != nil {
		t.Fatal(err)
	}
	if ms := mountsUnder(t, filepath.Join(dir, "boxes", h)); len(ms) > 0 || loopsOf(t, dir) != 0 {
		t.Errorf("after stop: mounts %v, %d loop devices", ms, loopsOf(t, dir))
	}
	if err := d.Start(ctx, h); err != nil {
		t.Fatal(err)
	}
	if out, _, _ := run(t, d, h, nil, "cat", "/kept"); out != "kept\n" {
		t.Errorf("after restart: %q", out)
	}
	if err := d.Remove(ctx, h); err != nil {
		t.Fatal(err)
	}
	assertNothingLeftOf(t, dir, h)
	// A crash: the host process goes away with the box running; Prune by
	// the next process removes it, mounts and loop device included.
	h2 := create(t, d, sandbox.Spec{BoxID: "hostile-disk2", Image: img, DiskSizeGB: 1})
	d.Close()
	d2, err := gvisor.New(gvisor.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	if err := d2.Prune(ctx, nil); err != nil {
		t.Fatal(err)
	}
	assertNothingLeftOf(t, dir, h2)
	if n := loopsOf(t, dir); n != 0 {
		t.Errorf("%d loop devices left after prune", n)
	}
}

// loopsOf counts the loop devices whose backing file is under dir.
func loopsOf(t *testing.T, dir string) int {
	t.Helper()
	files, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	n := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err == nil && strings.HasPrefix(strings.TrimSpace(string(b)), dir+"/") {
			n++
		}
	}
	return n
}

// BenchmarkCreateLayer times Create + the first exec's output of a box
// with shifted IDs and a disk image (DiskSizeGB 8, the API's default) and
// of one with shifted IDs and no disk against the same on a driver with
// unshifted IDs and no disk (what Create did before both), in the same run.
func BenchmarkCreateLayer(b *testing.B) {
	d, _ := newDriver(b)
	if !d.Limits().Disk {
		testenv.Skip(b, "no shifted IDs or disk limits here")
	}
	plain, err := gvisor.New(gvisor.Config{Dir: filepath.Join(b.TempDir(), "plain"), IDBase: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer plain.Close()
	img := &sandbox.Image{Ref: "busybox", Rootfs: busyboxRootfs(b)}
	ctx := context.Background()
	once := func(d *gvisor.Driver, disk int64) time.Duration {
		start := time.Now()
		h, err := d.Create(ctx, sandbox.Spec{BoxID: "bench", Image: img, CPU: 1, MemoryMB: 256, DiskSizeGB: disk})
		if err != nil {
			b.Fatal(err)
		}
		fw := &firstWrite{ch: make(chan struct{}, 1)}
		p, err := d.Exec(ctx, h, sandbox.ProcessSpec{Cmd: []string{"echo", "hi"}, Stdout: fw})
		if err != nil {
			b.Fatal(err)
		}
		<-fw.ch
		took := time.Since(start)
		p.Wait()
		b.StopTimer()
		if err := d.Remove(ctx, h); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		return took
	}
	var base, shifted, disk time.Duration
	for range b.N {
		base += once(plain, 0)
		shifted += once(d, 0)
		disk += once(d, 8)
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(b.N) }
	b.ReportMetric(ms(base), "unshifted-ms/op")
	b.ReportMetric(ms(shifted), "shifted-ms/op")
	b.ReportMetric(ms(disk), "disk-ms/op")
	b.ReportMetric(float64(shifted)/float64(base), "shifted-ratio")
	b.ReportMetric(float64(disk)/float64(base), "disk-ratio")
}
