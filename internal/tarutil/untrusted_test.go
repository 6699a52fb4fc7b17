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

	"github.com/boxrun/boxrun/internal/tarutil"
)

// extractUntrusted runs ExtractUntrusted into dir with the copied name "res".
func extractUntrusted(t *testing.T, dir string, r *bytes.Buffer, lim tarutil.Limits) error {
	t.Helper()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	return tarutil.ExtractUntrusted(context.Background(), r, root, "res", lim)
}

func TestExtractUntrusted_OK(t *testing.T) {
	dst := t.TempDir()
	r := mkTar(t,
		entry{name: "res/", typ: tar.TypeDir, mode: 0o2775},
		entry{name: "res/suid", body: "#!/bin/sh\n", mode: 0o4755},
		entry{name: "res/sgid", body: "x", mode: 0o2711},
		entry{name: "res/abs", typ: tar.TypeSymlink, link: "/etc/passwd"},
		entry{name: "res/up", typ: tar.TypeSymlink, link: "../.."},
		entry{name: "res/hard", typ: tar.TypeLink, link: "res/sgid"},
		entry{name: "res/null", typ: tar.TypeChar},
		entry{name: "res/disk", typ: tar.TypeBlock},
		entry{name: "res/fifo", typ: tar.TypeFifo},
		entry{name: "res/tmp/", typ: tar.TypeDir, mode: 0o1777},
	)
	if err := extractUntrusted(t, dst, r, tarutil.Limits{}); err != nil {
		t.Fatal(err)
	}
	got := tree(t, dst)
	want := map[string]string{
		".":        got["."],
		"res":      "d 775",
		"res/suid": tree(t, writeFile(t, "#!/bin/sh\n", 0o755))["."],
		"res/sgid": tree(t, writeFile(t, "x", 0o711))["."],
		"res/hard": tree(t, writeFile(t, "x", 0o711))["."],
		"res/abs":  "l /etc/passwd",
		"res/up":   "l ../..",
		"res/tmp":  "d 777t",
	}
	if d := diffTrees(got, want); d != "" {
		t.Error(d)
	}
	for _, n := range []string{"res", "res/suid", "res/sgid"} {
		fi, err := os.Lstat(filepath.Join(dst, n))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode()&(fs.ModeSetuid|fs.ModeSetgid) != 0 {
			t.Errorf("%s keeps setuid/setgid: %v", n, fi.Mode())
		}
	}
}

// TestExtractUntrusted_Hostile feeds archives a box could forge and checks
// that each fails with the expected error and that nothing outside the
// copied name (dst/res) was created or changed, dst's own mode included.
func TestExtractUntrusted_Hostile(t *testing.T) {
	huge := func(t *testing.T) *bytes.Buffer {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		if err := tw.WriteHeader(&tar.Header{Name: "res/big", Typeflag: tar.TypeReg, Mode: 0o644, Size: 10 << 30}); err != nil {
			t.Fatal(err)
		}
		_ = tw.Flush() // the body never comes: the header alone is refused
		buf.Write(make([]byte, 4096))
		return &buf
	}
	tests := []struct {
		name string
		tar  func(t *testing.T) *bytes.Buffer
		lim  tarutil.Limits
		pre  func(t *testing.T, dst string) // host state before extraction
		want error
	}{
		{name: "SymlinkToParentThenWrite", want: tarutil.ErrUnsafePath, tar: func(t *testing.T) *bytes.Buffer {
			return mkTar(t, entry{name: "res/up", typ: tar.TypeSymlink, link: ".."}, entry{name: "res/up/.bashrc", body: "pwned"})
		}},
		{name: "SymlinkInsideThenWrite", want: tarutil.ErrUnsafePath, tar: func(t *testing.T) *bytes.Buffer {
			return mkTar(t, entry{name: "res/d/", typ: tar.TypeDir}, entry{name: "res/l", typ: tar.TypeSymlink, link: "d"}, entry{name: "res/l/x", body: "x"})
		}},
		{name: "AbsoluteSymlinkThenWrite", want: tarutil.ErrUnsafePath, tar: func(t *testing.T) *bytes.Buffer {
			return mkTar(t, entry{name: "res/etc", typ: tar.TypeSymlink, link: "/etc"}, entry{name: "res/etc/pwned", body: "x"})
		}},
		{name: "Sibling", want: tarutil.ErrUnsafePath, tar: func(t *testing.T) *bytes.Buffer {
			return mkTar(t, entry{name: "res/", typ: tar.TypeDir}, entry{name: ".bashrc", body: "pwned"})
		}},
		{name: "SiblingPrefix", want: tarutil.ErrUnsafePath, tar: func(t *testing.T) *bytes.Buffer {
			return mkTar(t, entry{name: "res2", body: "pwned"})
		}},
		{name: "DotDot", want: tarutil.ErrUnsafePath, tar: func(t *testing.T) *bytes.Buffer {
			return mkTar(t, entry{name: "res/../.bashrc", body: "pwned"})
		}},
		{name: "Absolute", want: tarutil.ErrUnsafePath, tar: func(t *testing.T) *bytes.Buffer {
			return mkTar(t, entry{name: "/tmp/pwned", body: "x"})
		}},
		{name: "HostSymlinkInPath", want: tarutil.ErrUnsafePath,
			pre: func(t *testing.T, dst string) {
				mustMkdir(t, filepath.Join(dst, "res"))
				if err := os.Symlink("..", filepath.Join(dst, "res", "old")); err != nil {
					t.Fatal(err)
				}
			},
			tar: func(t *testing.T) *bytes.Buffer { return mkTar(t, entry{name: "res/old/.bashrc", body: "pwned"}) }},
		{name: "HostSymlinkAsTop", want: tarutil.ErrUnsafePath,
			pre: func(t *testing.T, dst string) {
				if err := os.Symlink(".", filepath.Join(dst, "res")); err != nil {
					t.Fatal(err)
				}
			},
			tar: func(t *testing.T) *bytes.Buffer { return mkTar(t, entry{name: "res/.bashrc", body: "pwned"}) }},
		{name: "HardlinkToHostFile", want: tarutil.ErrUnsafePath,
			pre: func(t *testing.T, dst string) { mustWrite(t, filepath.Join(dst, "res", "hostfile"), "host") },
			tar: func(t *testing.T) *bytes.Buffer {
				return mkTar(t, entry{name: "res/h", typ: tar.TypeLink, link: "res/hostfile"})
			}},
		{name: "HardlinkOutside", want: tarutil.ErrUnsafePath, tar: func(t *testing.T) *bytes.Buffer {
			return mkTar(t, entry{name: "res/h", typ: tar.TypeLink, link: ".bashrc"})
		}},
		{name: "HardlinkDotDot", want: tarutil.ErrUnsafePath, tar: func(t *testing.T) *bytes.Buffer {
			return mkTar(t, entry{name: "res/h", typ: tar.TypeLink, link: "res/../.bashrc"})
		}},
		{name: "HardlinkToReplacedFile", want: tarutil.ErrUnsafePath, tar: func(t *testing.T) *bytes.Buffer {
			return mkTar(t,
				entry{name: "res/f", body: "x"},
				entry{name: "res/f", typ: tar.TypeSymlink, link: "../.bashrc"},
				entry{name: "res/h", typ: tar.TypeLink, link: "res/f"})
		}},
		{name: "DirReplacedBySymlink", want: nil, tar: func(t *testing.T) *bytes.Buffer {
			// Without care, the deferred chmod of res/a would follow the
			// symlink and make dst world-writable.
			return mkTar(t,
				entry{name: "res/a/", typ: tar.TypeDir, mode: 0o777},
				entry{name: "res/a", typ: tar.TypeSymlink, link: "../.."})
		}},
		{name: "HugeHeader", want: tarutil.ErrTooLarge, lim: tarutil.Limits{MaxBytes: 1 << 30}, tar: huge},
		{name: "Truncated", want: nil, tar: huge}, // error checked below: no partial file
		{name: "OverBudget", want: tarutil.ErrTooLarge, lim: tarutil.Limits{MaxBytes: 10}, tar: func(t *testing.T) *bytes.Buffer {
			return mkTar(t, entry{name: "res/a", body: "123456"}, entry{name: "res/b", body: "123456"})
		}},
		{name: "TooManyEntries", want: tarutil.ErrTooLarge, lim: tarutil.Limits{MaxEntries: 2}, tar: func(t *testing.T) *bytes.Buffer {
			return mkTar(t, entry{name: "res/a"}, entry{name: "res/b"}, entry{name: "res/c"})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := t.TempDir()
			dst := filepath.Join(base, "home")
			mustWrite(t, filepath.Join(dst, ".bashrc"), "mine")
			mustWrite(t, filepath.Join(base, ".bashrc"), "parent's")
			if err := os.Chmod(dst, 0o750); err != nil {
				t.Fatal(err)
			}
			if tt.pre != nil {
				tt.pre(t, dst)
			}
			before := tree(t, base)
			err := extractUntrusted(t, dst, tt.tar(t), tt.lim)
			if tt.name == "Truncated" && err == nil {
				t.Fatal("truncated archive extracted without error")
			} else if tt.name != "Truncated" && (tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want)) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			after := tree(t, base)
			for name := range after {
				if inRes(name) {
					delete(after, name)
				}
			}
			for name := range before {
				if inRes(name) {
					delete(before, name)
				}
			}
			if d := diffTrees(after, before); d != "" {
				t.Errorf("changed outside home/res:\n%s", d)
			}
			if got := mustRead(t, filepath.Join(dst, ".bashrc")); got != "mine" {
				t.Errorf(".bashrc = %q", got)
			}
			if _, err := os.Lstat(filepath.Join(dst, "res", "big")); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("res/big: %v, want not created", err)
			}
		})
	}
}

func inRes(name string) bool {
	return name == "home/res" || len(name) > 9 && name[:9] == "home/res/"
}

func mustMkdir(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
}
