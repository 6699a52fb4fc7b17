package gvisor_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/driver/gvisor"
	"github.com/boxrun/boxrun/internal/testenv"
	"github.com/boxrun/boxrun/sandbox"
)

// volumeUser is the host user (not in /etc/passwd: only its ID matters)
// that owns the "user's directory" volumes below.
const volumeUser = 4321

// shiftedDriver returns a driver running as root with shifted IDs, or skips
// rootless (box root is the driver's own user there; TestRootlessMode).
func shiftedDriver(t *testing.T) (d *gvisor.Driver, dir string, base uint32) {
	t.Helper()
	gd, dir := newDriver(t)
	lim := gd.Limits()
	if lim.Rootless {
		testenv.Skip(t, "rootless: box root is the driver's own user and volumes are plain bind mounts (TestRootlessMode)")
	}
	if lim.IDBase == 0 {
		t.Fatalf("root driver without shifted IDs: %+v", lim)
	}
	return gd, dir, lim.IDBase
}

// TestHostile_VolumeOfUser: a read-write volume of an ordinary host user's
// (the usual `-v $PWD:/work`). Box root acts as that user there: what it
// writes belongs to the user, also a setuid program (setuid to the user,
// never to root); what other box users write is stored in the box range.
// The box cannot touch the files of host root's or of other host users'
// that lie in the volume, even world-writable ones, nor chown anything to
// host root.
func TestHostile_VolumeOfUser(t *testing.T) {
	d, dir, base := shiftedDriver(t)
	vol := t.TempDir()
	rootFile, otherFile := filepath.Join(vol, "root-file"), filepath.Join(vol, "other-user-file")
	for _, f := range []string{rootFile, otherFile} {
		if err := os.WriteFile(f, []byte("host\n"), 0o666); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(f, 0o666); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(otherFile, volumeUser+1, volumeUser+1); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(vol, volumeUser, volumeUser); err != nil {
		t.Fatal(err)
	}
	img := &sandbox.Image{Ref: "busybox", Rootfs: busyboxRootfs(t)}
	h := create(t, d, sandbox.Spec{BoxID: "vol-user", Image: img, Volumes: []boxapi.Volume{
		{HostPath: vol, GuestPath: "/work"},
	}})
	script := `cd /work
stat -c '%u:%g' .
cp /bin/busybox suid && chmod 6755 suid
mkdir dir && echo x > dir/f
echo x > other && chown 1000:1000 other
echo x > given && chown 65534:65534 given && chown 0:0 given
echo x > grp && chgrp 1000 grp && chmod g+s grp
for f in root-file other-user-file; do
  if echo evil >> $f; then echo "wrote $f"; fi
  chown 0:0 $f; chmod 4777 $f
done
true
`
	out, errOut, code := run(t, d, h, nil, "sh", "-c", script)
	if code != 0 {
		t.Fatalf("script: exit %d\n%s%s", code, out, errOut)
	}
	if first, _, _ := strings.Cut(out, "\n"); first != "0:0" {
		t.Errorf("the volume's owner seen in the box: %q, want box root (0:0)", first)
	}
	if strings.Contains(out, "wrote") {
		t.Errorf("the box wrote host files it does not own:\n%s", out)
	}
	// (gVisor reports success for the chown and chmod of a file whose
	// owner is unmapped; what counts is that the host file is unchanged.)
	for f, own := range map[string]uint32{rootFile: 0, otherFile: volumeUser + 1} {
		if b, _ := os.ReadFile(f); string(b) != "host\n" {
			t.Errorf("%s changed by the box: %q", f, b)
		}
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if sys := st.Sys().(*syscall.Stat_t); st.Mode() != 0o666 || sys.Uid != own || sys.Gid != own {
			t.Errorf("%s changed by the box: mode %v, owner %d:%d", f, st.Mode(), sys.Uid, sys.Gid)
		}
	}
	checkHostMount(t, filepath.Join(dir, "boxes", h, "vols", "0"), "rw")
	checkOwner(t, filepath.Join(vol, "suid"), volumeUser)
	checkOwner(t, filepath.Join(vol, "dir"), volumeUser)
	checkOwner(t, filepath.Join(vol, "dir", "f"), volumeUser)
	checkOwner(t, filepath.Join(vol, "given"), volumeUser)
	checkOwner(t, filepath.Join(vol, "other"), base+1000)
	// Only the two host files were root's or another user's to begin with.
	filepath.Walk(vol, func(p string, st os.FileInfo, err error) error {
		if err != nil || p == rootFile || p == otherFile {
			return nil
		}
		sys := st.Sys().(*syscall.Stat_t)
		if uid, gid := sys.Uid, sys.Gid; uid == 0 || gid == 0 || uid == volumeUser+1 {
			t.Errorf("box wrote %s as host %d:%d", p, uid, gid)
		}
		return nil
	})
}

// TestHostile_VolumeReadOnly: a read-only volume of host root's is mounted
// read-only on the host side too, and box root reads there only what
// others may read: it is not host root.
func TestHostile_VolumeReadOnly(t *testing.T) {
	d, dir, _ := shiftedDriver(t)
	vol := t.TempDir()
	if err := os.WriteFile(filepath.Join(vol, "pub"), []byte("pub\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(vol, "secret"), []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	img := &sandbox.Image{Ref: "busybox", Rootfs: busyboxRootfs(t)}
	h := create(t, d, sandbox.Spec{BoxID: "vol-ro", Image: img, Volumes: []boxapi.Volume{
		{HostPath: vol, GuestPath: "/ro", Readonly: true},
	}})
	out, errOut, _ := run(t, d, h, nil, "sh", "-c", `cat /ro/pub; cat /ro/secret; echo x > /ro/new; echo x >> /ro/pub; chmod 4755 /ro/pub; true`)
	if out != "pub\n" {
		t.Errorf("box read %q from the read-only volume (stderr %q), want only the world-readable file", out, errOut)
	}
	if !strings.Contains(errOut, "Permission denied") {
		t.Errorf("reading a host-root 0600 file: %q, want Permission denied", errOut)
	}
	if _, err := os.Stat(filepath.Join(vol, "new")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("box created a file in a read-only volume: %v", err)
	}
	if st, err := os.Stat(filepath.Join(vol, "pub")); err != nil || st.Mode() != 0o644 || st.Size() != 4 {
		t.Errorf("read-only volume file changed: %v %v", st, err)
	}
	checkHostMount(t, filepath.Join(dir, "boxes", h, "vols", "0"), "ro")
}

// TestHostile_VolumeOfHostRootRefused: a read-write volume that belongs to
// host root (user or group) is refused with ErrInvalid and nothing is
// made: the box would write there as host root, or (ID-mapped) could not
// write at all. The same directory read-only is fine.
func TestHostile_VolumeOfHostRootRefused(t *testing.T) {
	d, _, _ := shiftedDriver(t)
	img := &sandbox.Image{Ref: "busybox", Rootfs: busyboxRootfs(t)}
	for _, own := range [][2]int{{0, 0}, {volumeUser, 0}, {0, volumeUser}} {
		vol := t.TempDir()
		if err := os.Chmod(vol, 0o777); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(vol, own[0], own[1]); err != nil {
			t.Fatal(err)
		}
		h, err := d.Create(context.Background(), sandbox.Spec{BoxID: "vol-root", Image: img, Volumes: []boxapi.Volume{{HostPath: vol, GuestPath: "/v"}}})
		if !errors.Is(err, boxapi.ErrInvalid) || !strings.Contains(err.Error(), "belongs to host root") {
			t.Errorf("read-write volume owned by %d:%d: handle %q, err %v; want ErrInvalid", own[0], own[1], h, err)
		}
		if ents, _ := os.ReadDir(vol); len(ents) > 0 {
			t.Errorf("refused create wrote into the volume: %v", ents)
		}
	}
	vol := t.TempDir()
	h := create(t, d, sandbox.Spec{BoxID: "vol-root-ro", Image: img, Volumes: []boxapi.Volume{{HostPath: vol, GuestPath: "/v", Readonly: true}}})
	if err := d.Remove(context.Background(), h); err != nil {
		t.Fatal(err)
	}
}
