package tarutil_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/boxrun/boxrun/internal/tarutil"
)

// mkTree builds a directory with every kind of entry Create handles.
func mkTree(t *testing.T) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	mustWrite(t, filepath.Join(src, "bin.dat"), string(randomBytes(t, 300_000)))
	mustWrite(t, filepath.Join(src, "a/b/c.txt"), "deep\n")
	mustWrite(t, filepath.Join(src, "exe"), "#!/bin/sh\n")
	for _, err := range []error{
		os.Chmod(filepath.Join(src, "exe"), 0o755),
		os.MkdirAll(filepath.Join(src, "empty"), 0o700),
		os.Symlink("/etc", filepath.Join(src, "abs-link")),
		os.Symlink("a/b", filepath.Join(src, "rel-link")),
		os.Link(filepath.Join(src, "bin.dat"), filepath.Join(src, "a/hard")),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	return src
}

// names lists the entry names and types of a tar stream.
func names(t *testing.T, b []byte) []string {
	t.Helper()
	var out []string
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(h.Typeflag)+" "+h.Name)
	}
}

func TestCreate(t *testing.T) {
	t.Run("RoundTrip", func(t *testing.T) {
		src := mkTree(t)
		var buf bytes.Buffer
		if err := tarutil.Create(context.Background(), &buf, src); err != nil {
			t.Fatal(err)
		}
		dst := t.TempDir()
		if err := tarutil.Extract(context.Background(), &buf, dst); err != nil {
			t.Fatal(err)
		}
		if d := diffTrees(tree(t, filepath.Join(dst, "src")), tree(t, src)); d != "" {
			t.Error(d)
		}
		a, _ := os.Stat(filepath.Join(dst, "src/bin.dat"))
		b, _ := os.Stat(filepath.Join(dst, "src/a/hard"))
		if !os.SameFile(a, b) {
			t.Error("hard link not preserved")
		}
	})

	t.Run("Names", func(t *testing.T) {
		src := mkTree(t)
		var buf bytes.Buffer
		if err := tarutil.Create(context.Background(), &buf, src+"/"); err != nil {
			t.Fatal(err)
		}
		got := names(t, buf.Bytes())
		want := []string{
			"5 src/", "5 src/a/", "5 src/a/b/", "0 src/a/b/c.txt", "0 src/a/hard", "2 src/abs-link",
			"1 src/bin.dat", "5 src/empty/", "0 src/exe", "2 src/rel-link",
		}
		if !slices.Equal(got, want) {
			t.Errorf("entries\n got %q\nwant %q", got, want)
		}
	})

	t.Run("SingleFile", func(t *testing.T) {
		src := mkTree(t)
		var buf bytes.Buffer
		if err := tarutil.Create(context.Background(), &buf, filepath.Join(src, "a/b/c.txt")); err != nil {
			t.Fatal(err)
		}
		if got, want := names(t, buf.Bytes()), []string{"0 c.txt"}; !slices.Equal(got, want) {
			t.Errorf("entries %q, want %q", got, want)
		}
	})

	t.Run("SymlinkNotFollowed", func(t *testing.T) {
		src := mkTree(t)
		var buf bytes.Buffer
		if err := tarutil.Create(context.Background(), &buf, filepath.Join(src, "rel-link")); err != nil {
			t.Fatal(err)
		}
		if got, want := names(t, buf.Bytes()), []string{"2 rel-link"}; !slices.Equal(got, want) {
			t.Errorf("entries %q, want %q", got, want)
		}
	})

	t.Run("ErrNotExist", func(t *testing.T) {
		err := tarutil.Create(context.Background(), io.Discard, filepath.Join(t.TempDir(), "missing"))
		if !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("err = %v, want fs.ErrNotExist", err)
		}
	})

	t.Run("Canceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := tarutil.Create(ctx, io.Discard, mkTree(t))
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	})
}

func TestCreateRoot(t *testing.T) {
	base := t.TempDir()
	mustWrite(t, filepath.Join(base, "outside/secret"), "secret")
	mustWrite(t, filepath.Join(base, "box/in/file"), "inside")
	for _, err := range []error{
		os.Symlink("../outside", filepath.Join(base, "box/up")),
		os.Symlink("/", filepath.Join(base, "box/abs")),
		os.Symlink("in", filepath.Join(base, "box/alias")),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	root, err := os.OpenRoot(filepath.Join(base, "box"))
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()

	t.Run("ThroughInsideSymlink", func(t *testing.T) {
		var buf bytes.Buffer
		if err := tarutil.CreateRoot(context.Background(), &buf, root, "alias/file"); err != nil {
			t.Fatal(err)
		}
		if got, want := names(t, buf.Bytes()), []string{"0 file"}; !slices.Equal(got, want) {
			t.Errorf("entries %q, want %q", got, want)
		}
	})
	t.Run("Root", func(t *testing.T) {
		var buf bytes.Buffer
		if err := tarutil.CreateRoot(context.Background(), &buf, root, "."); err != nil {
			t.Fatal(err)
		}
		want := []string{"5 ./", "2 abs", "2 alias", "5 in/", "0 in/file", "2 up"}
		if got := names(t, buf.Bytes()); !slices.Equal(got, want) {
			t.Errorf("entries %q, want %q", got, want)
		}
	})
	for _, name := range []string{"up/secret", "abs/etc/passwd", "../outside/secret", "/etc/passwd", "in/../../outside"} {
		t.Run("ErrUnsafePath/"+name, func(t *testing.T) {
			var buf bytes.Buffer
			err := tarutil.CreateRoot(context.Background(), &buf, root, name)
			if !errors.Is(err, tarutil.ErrUnsafePath) {
				t.Fatalf("err = %v, want ErrUnsafePath", err)
			}
			if buf.Len() != 0 {
				t.Errorf("wrote %d bytes", buf.Len())
			}
		})
	}
}

func TestOpenDir(t *testing.T) {
	base := t.TempDir()
	mustWrite(t, filepath.Join(base, "box/in/file"), "inside")
	for _, err := range []error{
		os.MkdirAll(filepath.Join(base, "outside"), 0o755),
		os.Symlink("../outside", filepath.Join(base, "box/up")),
		os.Symlink("/tmp", filepath.Join(base, "box/abs")),
		os.Symlink("in", filepath.Join(base, "box/alias")),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	root, err := os.OpenRoot(filepath.Join(base, "box"))
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()

	t.Run("Create", func(t *testing.T) {
		sub, err := tarutil.OpenDir(root, "alias/new/deeper", true)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		if fi, err := os.Stat(filepath.Join(base, "box/in/new/deeper")); err != nil || !fi.IsDir() {
			t.Errorf("not created through the inside symlink: %v", err)
		}
	})
	t.Run("Existing", func(t *testing.T) {
		sub, err := tarutil.OpenDir(root, ".", false)
		if err != nil {
			t.Fatal(err)
		}
		sub.Close()
	})
	t.Run("ErrNotExist", func(t *testing.T) {
		if _, err := tarutil.OpenDir(root, "missing", false); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("err = %v, want fs.ErrNotExist", err)
		}
	})
	for _, name := range []string{"up", "up/x", "abs/x", "../outside", "/tmp"} {
		t.Run("ErrUnsafePath/"+name, func(t *testing.T) {
			if _, err := tarutil.OpenDir(root, name, true); !errors.Is(err, tarutil.ErrUnsafePath) {
				t.Errorf("err = %v, want ErrUnsafePath", err)
			}
			if entries, _ := os.ReadDir(filepath.Join(base, "outside")); len(entries) != 0 {
				t.Errorf("created outside: %v", entries)
			}
		})
	}
}
