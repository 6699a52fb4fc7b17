package boxrun

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// sealFixture is a small snapshot-like tree: an image file, a box file,
// a box symlink, a fifo, a directory and a 64 GiB sparse file.
func sealFixture(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "image"), 0o700))
	must(os.MkdirAll(filepath.Join(dir, "upper", "etc"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "image", "pages.img"), []byte(strings.Repeat("memory", 50000)), 0o600))
	must(os.WriteFile(filepath.Join(dir, "upper", "data.txt"), []byte("kept\n"), 0o644))
	must(os.Symlink("/etc/passwd", filepath.Join(dir, "upper", "etc", "link")))
	must(unix.Mkfifo(filepath.Join(dir, "upper", "fifo"), 0o600))
	f, err := os.Create(filepath.Join(dir, "upper", "huge"))
	must(err)
	must(f.Truncate(64 << 30))
	_, err = f.WriteAt([]byte("tail"), 32<<30)
	must(err)
	must(f.Close())
	return dir
}

// The manifest is stable, ignores nothing that matters, and names the
// first difference: a modified byte, a truncation, a file swapped for a
// symlink, an added file, a mode change; zeros stored or left as holes
// are the same contents; a 64 GiB sparse file is read only where it
// holds data.
func TestSnapshotManifest(t *testing.T) {
	ctx := context.Background()
	dir := sealFixture(t)
	want, err := snapshotManifest(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := snapshotManifest(ctx, dir); again != want {
		t.Fatal("manifest of an unchanged directory differs")
	}
	for _, l := range []string{`"upper/etc/link"` + "\tl", `"upper/fifo"` + "\tp", `"upper/huge"` + "\tf"} {
		if !strings.Contains(want, l) {
			t.Errorf("manifest lacks %q:\n%s", l, want)
		}
	}
	cases := []struct {
		name   string
		tamper func(dir string) error
		says   string
	}{
		{"modified byte", func(dir string) error {
			f, err := os.OpenFile(filepath.Join(dir, "image", "pages.img"), os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.WriteAt([]byte("X"), 1000)
			return err
		}, `"image/pages.img" changed contents`},
		{"truncated", func(dir string) error { return os.Truncate(filepath.Join(dir, "image", "pages.img"), 100) }, `"image/pages.img" changed size`},
		{"swapped for a symlink", func(dir string) error {
			p := filepath.Join(dir, "upper", "data.txt")
			if err := os.Remove(p); err != nil {
				return err
			}
			return os.Symlink("/etc/shadow", p)
		}, `"upper/data.txt" changed type (symbolic link, was file)`},
		{"symlink retargeted", func(dir string) error {
			p := filepath.Join(dir, "upper", "etc", "link")
			if err := os.Remove(p); err != nil {
				return err
			}
			return os.Symlink("/etc/shadow", p)
		}, `"upper/etc/link" changed contents`},
		{"added file", func(dir string) error {
			return os.WriteFile(filepath.Join(dir, "upper", "etc", "planted"), nil, 0o4755)
		}, `"upper/etc/planted" was added`},
		{"removed file", func(dir string) error { return os.Remove(filepath.Join(dir, "upper", "fifo")) }, `"upper/fifo" is missing`},
		{"mode", func(dir string) error { return os.Chmod(filepath.Join(dir, "upper", "data.txt"), 0o4755) }, `"upper/data.txt" changed mode or owner`},
		{"data in a hole", func(dir string) error {
			f, err := os.OpenFile(filepath.Join(dir, "upper", "huge"), os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.WriteAt([]byte("x"), 1<<30)
			return err
		}, `"upper/huge" changed contents`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := sealFixture(t)
			want, err := snapshotManifest(ctx, dir)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.tamper(dir); err != nil {
				t.Fatal(err)
			}
			got, err := snapshotManifest(ctx, dir)
			if err != nil {
				t.Fatal(err)
			}
			if got == want {
				t.Fatal("tampering not seen")
			}
			if d := manifestDiff(want, got); !strings.Contains(d, c.says) {
				t.Errorf("diff %q, want it to say %q", d, c.says)
			}
		})
	}
	t.Run("zeros stored or holes", func(t *testing.T) {
		a, b := t.TempDir(), t.TempDir()
		if err := os.WriteFile(filepath.Join(a, "f"), make([]byte, 1<<20), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(b, "f"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(filepath.Join(b, "f"), 1<<20); err != nil {
			t.Fatal(err)
		}
		ma, _ := snapshotManifest(ctx, a)
		mb, _ := snapshotManifest(ctx, b)
		if ma != mb {
			t.Errorf("zeros and a hole differ:\n%s\n%s", ma, mb)
		}
	})
}
