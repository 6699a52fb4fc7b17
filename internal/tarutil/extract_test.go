package tarutil_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/boxrun/boxrun/internal/tarutil"
)

func TestExtract(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		dst := filepath.Join(t.TempDir(), "new", "dst") // created by Extract
		bin := string(randomBytes(t, 100_000))
		r := mkTar(t,
			entry{name: "top/", typ: tar.TypeDir, mode: 0o750},
			entry{name: "top/bin.dat", body: bin, mode: 0o600},
			entry{name: "top/exe.sh", body: "#!/bin/sh\necho hi\n", mode: 0o755},
			entry{name: "top/empty/", typ: tar.TypeDir},
			entry{name: "top/deep/er/file", body: "implicit parents"},
			entry{name: "top/abs-link", typ: tar.TypeSymlink, link: "/etc/passwd"},
			entry{name: "top/rel-link", typ: tar.TypeSymlink, link: "exe.sh"},
			entry{name: "top/hard", typ: tar.TypeLink, link: "top/bin.dat"},
			entry{name: "./dotted", body: "x"},
			entry{name: "sticky/", typ: tar.TypeDir, mode: 0o1777},
		)
		if err := tarutil.Extract(context.Background(), r, dst); err != nil {
			t.Fatal(err)
		}
		got := tree(t, dst)
		want := map[string]string{
			".":                got["."],
			"top":              "d 750",
			"top/bin.dat":      tree(t, writeFile(t, bin, 0o600))["."],
			"top/exe.sh":       tree(t, writeFile(t, "#!/bin/sh\necho hi\n", 0o755))["."],
			"top/empty":        "d 755",
			"top/deep":         "d 755",
			"top/deep/er":      "d 755",
			"top/deep/er/file": tree(t, writeFile(t, "implicit parents", 0o644))["."],
			"top/abs-link":     "l /etc/passwd",
			"top/rel-link":     "l exe.sh",
			"top/hard":         tree(t, writeFile(t, bin, 0o600))["."],
			"dotted":           tree(t, writeFile(t, "x", 0o644))["."],
			"sticky":           "d 777t",
		}
		if d := diffTrees(got, want); d != "" {
			t.Error(d)
		}
		a, _ := os.Stat(filepath.Join(dst, "top/bin.dat"))
		b, _ := os.Stat(filepath.Join(dst, "top/hard"))
		if !os.SameFile(a, b) {
			t.Error("top/hard is not a hard link of top/bin.dat")
		}
		for _, name := range []string{"top", "top/empty", "top/exe.sh"} {
			fi, err := os.Stat(filepath.Join(dst, name))
			if err != nil {
				t.Fatal(err)
			}
			if got, want := fi.ModTime(), time.Unix(1700000000, 0); !got.Equal(want) {
				t.Errorf("%s: mtime %v, want %v", name, got, want)
			}
		}
	})

	t.Run("OverwriteNotThroughSymlinks", func(t *testing.T) {
		base := t.TempDir()
		dst := filepath.Join(base, "dst")
		outside := filepath.Join(base, "outside")
		mustWrite(t, outside, "secret")
		mustWrite(t, filepath.Join(dst, "plain"), "old")
		if err := os.Symlink(outside, filepath.Join(dst, "planted")); err != nil {
			t.Fatal(err)
		}
		r := mkTar(t, entry{name: "plain", body: "new"}, entry{name: "planted", body: "pwned"})
		if err := tarutil.Extract(context.Background(), r, dst); err != nil {
			t.Fatal(err)
		}
		if got := mustRead(t, outside); got != "secret" {
			t.Errorf("file outside dst was written through a symlink: %q", got)
		}
		if got := mustRead(t, filepath.Join(dst, "planted")); got != "pwned" {
			t.Errorf("planted = %q, want the archive's content", got)
		}
		if got := mustRead(t, filepath.Join(dst, "plain")); got != "new" {
			t.Errorf("plain = %q, want new", got)
		}
	})

	t.Run("SymlinkInsideIsFollowed", func(t *testing.T) {
		dst := t.TempDir()
		r := mkTar(t,
			entry{name: "real/", typ: tar.TypeDir},
			entry{name: "alias", typ: tar.TypeSymlink, link: "real"},
			entry{name: "alias/x", body: "via alias"},
			entry{name: "sub/up", typ: tar.TypeSymlink, link: "../real"},
			entry{name: "sub/up/y", body: "via up"},
		)
		if err := tarutil.Extract(context.Background(), r, dst); err != nil {
			t.Fatal(err)
		}
		if got := mustRead(t, filepath.Join(dst, "real/x")); got != "via alias" {
			t.Errorf("real/x = %q", got)
		}
		if got := mustRead(t, filepath.Join(dst, "real/y")); got != "via up" {
			t.Errorf("real/y = %q", got)
		}
	})

	t.Run("Canceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := tarutil.Extract(ctx, mkTar(t, entry{name: "f", body: "x"}), t.TempDir())
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	})

	t.Run("ErrCorrupt", func(t *testing.T) {
		b := mkTar(t, entry{name: "f", body: "0123456789"}).Bytes()
		err := tarutil.Extract(context.Background(), bytes.NewReader(b[:515]), t.TempDir())
		if err == nil {
			t.Fatal("truncated archive extracted without error")
		}
	})
}

// TestExtract_Unsafe feeds malicious archives and checks that each is
// rejected with ErrUnsafePath and that nothing outside dst changed.
func TestExtract_Unsafe(t *testing.T) {
	tests := []struct {
		name    string
		entries []entry
		pre     func(t *testing.T, dst, outside string) // state planted before extraction
	}{
		{name: "DotDot", entries: []entry{{name: "../escape", body: "x"}}},
		{name: "DotDotInside", entries: []entry{{name: "a/../../escape", body: "x"}}},
		{name: "DotDotDir", entries: []entry{{name: "../newdir/", typ: tar.TypeDir}}},
		{name: "Absolute", entries: []entry{{name: "/tmp/escape", body: "x"}}},
		{name: "SymlinkToParent", entries: []entry{
			{name: "lnk", typ: tar.TypeSymlink, link: ".."},
			{name: "lnk/outside/escape", body: "x"},
		}},
		{name: "SymlinkAbsolute", entries: []entry{
			{name: "lnk", typ: tar.TypeSymlink, link: "/"},
			{name: "lnk/tmp/escape", body: "x"},
		}},
		{name: "SymlinkChain", entries: []entry{
			{name: "a/b", typ: tar.TypeSymlink, link: "../c"},
			{name: "c", typ: tar.TypeSymlink, link: "d/../../"},
			{name: "a/b/outside/escape", body: "x"},
		}},
		{name: "SymlinkLoop", entries: []entry{
			{name: "loop", typ: tar.TypeSymlink, link: "loop"},
			{name: "loop/x", body: "x"},
		}},
		{name: "SymlinkThenDir", entries: []entry{
			{name: "lnk", typ: tar.TypeSymlink, link: "../outside"},
			{name: "lnk/newdir/", typ: tar.TypeDir},
		}},
		{name: "SymlinkThenSymlink", entries: []entry{
			{name: "lnk", typ: tar.TypeSymlink, link: "../outside"},
			{name: "lnk/l2", typ: tar.TypeSymlink, link: "/etc/passwd"},
		}},
		{name: "PlantedSymlink", entries: []entry{{name: "planted/escape", body: "x"}},
			pre: func(t *testing.T, dst, outside string) {
				if err := os.Symlink(outside, filepath.Join(dst, "planted")); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "HardlinkDotDot", entries: []entry{{name: "h", typ: tar.TypeLink, link: "../outside/secret"}}},
		{name: "HardlinkAbsolute", entries: []entry{{name: "h", typ: tar.TypeLink, link: "/etc/passwd"}}},
		{name: "HardlinkThroughSymlink", entries: []entry{
			{name: "lnk", typ: tar.TypeSymlink, link: "../outside"},
			{name: "h", typ: tar.TypeLink, link: "lnk/secret"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := t.TempDir()
			dst := filepath.Join(base, "dst")
			outside := filepath.Join(base, "outside")
			mustWrite(t, filepath.Join(outside, "secret"), "secret")
			if err := os.MkdirAll(dst, 0o755); err != nil {
				t.Fatal(err)
			}
			if tt.pre != nil {
				tt.pre(t, dst, outside)
			}
			before := tree(t, outside)
			err := tarutil.Extract(context.Background(), mkTar(t, tt.entries...), dst)
			if !errors.Is(err, tarutil.ErrUnsafePath) {
				t.Fatalf("err = %v, want ErrUnsafePath", err)
			}
			if d := diffTrees(tree(t, outside), before); d != "" {
				t.Errorf("outside dst changed:\n%s", d)
			}
			names, err := os.ReadDir(base)
			if err != nil {
				t.Fatal(err)
			}
			if len(names) != 2 {
				t.Errorf("entries created next to dst: %v", names)
			}
		})
	}
}

// TestExtract_ReadOnlyDir checks that a directory whose archived mode denies
// writing is still filled (its mode is applied last).
func TestExtract_ReadOnlyDir(t *testing.T) {
	dst := t.TempDir()
	t.Cleanup(func() { _ = os.Chmod(filepath.Join(dst, "ro"), 0o755) })
	r := mkTar(t, entry{name: "ro/", typ: tar.TypeDir, mode: 0o555}, entry{name: "ro/f", body: "x"})
	if err := tarutil.Extract(context.Background(), r, dst); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dst, "ro"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fi.Mode().Perm(), fs.FileMode(0o555); got != want {
		t.Errorf("mode %v, want %v", got, want)
	}
}

// TestExtract_SkipsDevices checks that device and FIFO entries are ignored.
func TestExtract_SkipsDevices(t *testing.T) {
	dst := t.TempDir()
	r := mkTar(t, entry{name: "null", typ: tar.TypeChar}, entry{name: "fifo", typ: tar.TypeFifo}, entry{name: "f", body: "x"})
	if err := tarutil.Extract(context.Background(), r, dst); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"null", "fifo"} {
		if _, err := os.Lstat(filepath.Join(dst, n)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: got %v, want not created", n, err)
		}
	}
}

func writeFile(t testing.TB, body string, mode fs.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f")
	mustWrite(t, p, body)
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func mustWrite(t testing.TB, p, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustRead(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
