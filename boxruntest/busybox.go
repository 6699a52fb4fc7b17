package boxruntest

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/boxrun/boxrun/internal/testenv"
	"github.com/boxrun/boxrun/sandbox"
)

// BusyboxPath is where BusyboxImage takes busybox from: Debian's
// busybox-static package (a static binary, so it runs in any rootfs).
const BusyboxPath = "/bin/busybox"

// busyboxLayout versions the rootfs layout in the cache directory name;
// bump it when buildBusyboxRootfs changes.
const busyboxLayout = "v2"

// The non-root users and groups of BusyboxImage's rootfs: BusyboxUser
// (uid BusyboxUID, primary group BusyboxUser with gid BusyboxGID, member
// of BusyboxExtraGroup, home BusyboxHome) and nobody:nogroup (65534).
const (
	BusyboxUser       = "boxuser"
	BusyboxUID        = 1234
	BusyboxGID        = 1234
	BusyboxExtraGroup = "boxextra"
	BusyboxExtraGID   = 1235
	BusyboxHome       = "/home/boxuser"
)

// BusyboxImage returns an image whose rootfs holds busybox and nothing else:
// bin/busybox, a symlink bin/<applet> -> busybox for every applet (sh, cat,
// sleep, ...), etc/passwd and etc/group with root, BusyboxUser and nobody
// (see the constants), root/ (0700), home/boxuser/ (owned by BusyboxUser
// when built as root), tmp/ (1777), and empty usr/bin, usr/sbin, sbin, dev,
// proc and sys. Its Config.Env sets PATH; Config.User is empty (root); Ref
// is "busybox-test" and Digest is empty.
//
// The rootfs is built once per busybox binary and layout into a directory
// under os.TempDir() shared by every test binary (built aside and renamed
// into place, so concurrent builds are safe). It is read-only by contract:
// drivers must not modify it. The test is skipped when BusyboxPath is
// missing (install Debian's busybox-static).
func BusyboxImage(t testing.TB) *sandbox.Image {
	t.Helper()
	if _, err := os.Stat(BusyboxPath); err != nil {
		testenv.Skip(t, fmt.Sprintf("boxruntest: %s is missing (apt-get install busybox-static): %v", BusyboxPath, err))
	}
	dir, err := busyboxRootfs(os.TempDir())
	if err != nil {
		t.Fatalf("boxruntest: busybox rootfs: %v", err)
	}
	return &sandbox.Image{
		Ref:    "busybox-test",
		Rootfs: dir,
		Config: sandbox.ImageConfig{Env: []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}},
	}
}

// BusyboxImageWithUser is BusyboxImage with Config.User set to user, e.g.
// BusyboxUser, "nobody:nogroup" or "1234:1235" (see the constants for what
// resolves).
func BusyboxImageWithUser(t testing.TB, user string) *sandbox.Image {
	t.Helper()
	img := BusyboxImage(t)
	img.Config.User = user
	return img
}

// BusyboxRootfs returns the rootfs directory of BusyboxImage, building it
// under cache (BusyboxImage uses os.TempDir()) if needed. It is for tools
// that package that rootfs, such as the image builder of the Kubernetes test
// cluster (scripts/k8s-up.sh); tests use BusyboxImage.
func BusyboxRootfs(cache string) (string, error) { return busyboxRootfs(cache) }

// busyboxRootfs returns the cached rootfs directory under cache, building it
// if needed.
func busyboxRootfs(cache string) (string, error) {
	sum, err := fileSHA256(BusyboxPath)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, "boxrun-busybox-"+busyboxLayout+"-"+sum[:16])
	if _, err := os.Stat(filepath.Join(dir, "bin", "busybox")); err == nil {
		return dir, nil
	}
	var suffix [6]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		return "", err
	}
	tmp := dir + ".tmp-" + hex.EncodeToString(suffix[:])
	if err := buildBusyboxRootfs(tmp); err != nil {
		_ = os.RemoveAll(tmp)
		return "", err
	}
	if err := os.Rename(tmp, dir); err != nil {
		_ = os.RemoveAll(tmp)
		if _, serr := os.Stat(filepath.Join(dir, "bin", "busybox")); serr == nil {
			return dir, nil // another test binary won the race
		}
		return "", err
	}
	return dir, nil
}

// buildBusyboxRootfs lays out the rootfs described on BusyboxImage in dir.
func buildBusyboxRootfs(dir string) error {
	for _, d := range []string{"bin", "sbin", "usr/bin", "usr/sbin", "etc", "root", "tmp", "dev", "proc", "sys"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.Chmod(filepath.Join(dir, "root"), 0o700); err != nil {
		return err
	}
	if err := os.Chmod(filepath.Join(dir, "tmp"), 0o777|fs.ModeSticky); err != nil {
		return err
	}
	if err := copyFile(BusyboxPath, filepath.Join(dir, "bin", "busybox"), 0o755); err != nil {
		return err
	}
	out, err := exec.Command(BusyboxPath, "--list").Output()
	if err != nil {
		return fmt.Errorf("%s --list: %w", BusyboxPath, err)
	}
	for _, applet := range strings.Fields(string(out)) {
		if applet == "busybox" || strings.ContainsRune(applet, '/') {
			continue
		}
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", applet)); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
	}
	files := map[string]string{
		"etc/passwd": fmt.Sprintf("root:x:0:0:root:/root:/bin/sh\n%[1]s:x:%[2]d:%[3]d:%[1]s:%[4]s:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
			BusyboxUser, BusyboxUID, BusyboxGID, BusyboxHome),
		"etc/group": fmt.Sprintf("root:x:0:\n%s:x:%d:\n%s:x:%d:%s\nnogroup:x:65534:\n",
			BusyboxUser, BusyboxGID, BusyboxExtraGroup, BusyboxExtraGID, BusyboxUser),
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			return err
		}
	}
	home := filepath.Join(dir, BusyboxHome)
	if err := os.MkdirAll(home, 0o755); err != nil {
		return err
	}
	if os.Geteuid() == 0 {
		return os.Chown(home, BusyboxUID, BusyboxGID)
	}
	return nil
}

func copyFile(src, dst string, mode fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
