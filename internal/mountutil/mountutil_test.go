package mountutil_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/boxrun/boxrun/internal/mountutil"
	"github.com/boxrun/boxrun/internal/testenv"
	"golang.org/x/sys/unix"
)

func TestUnescape(t *testing.T) {
	if got := mountutil.Unescape(`/a\040b\011c\\`); got != "/a b\tc\\\\" {
		t.Errorf("Unescape = %q", got)
	}
}

// TestUnmountUnder mounts nested tmpfs (one on a path with a space) and
// checks they are listed deepest first and all removed.
func TestUnmountUnder(t *testing.T) {
	testenv.NeedRoot(t)
	dir := t.TempDir()
	outer := filepath.Join(dir, "a b")
	inner := filepath.Join(outer, "inner")
	if err := os.Mkdir(outer, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(inner, unix.MNT_DETACH); _ = unix.Unmount(outer, unix.MNT_DETACH) })
	if err := unix.Mount("tmpfs", outer, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(inner, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", inner, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	ms, err := mountutil.Under(dir)
	if err != nil || !slices.Equal(ms, []string{inner, outer}) {
		t.Fatalf("Under = %q, %v; want %q", ms, err, []string{inner, outer})
	}
	if !mountutil.IsMounted(outer) || mountutil.IsMounted(dir) {
		t.Error("IsMounted")
	}
	if err := mountutil.UnmountUnder(dir); err != nil {
		t.Fatal(err)
	}
	if ms, _ := mountutil.Under(dir); len(ms) != 0 {
		t.Errorf("left: %q", ms)
	}
	if err := mountutil.Unmount(outer); err != nil {
		t.Errorf("Unmount of a plain directory: %v", err)
	}
}
