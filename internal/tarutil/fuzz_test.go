package tarutil_test

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/boxrun/boxrun/internal/tarutil"
)

// fuzzSeeds are tar streams that reach every branch of the extractors:
// plain trees, escapes, links through symlinks, devices, setuid.
func fuzzSeeds(f *testing.F) {
	for _, es := range [][]entry{
		{{name: "res/", typ: tar.TypeDir}, {name: "res/a", body: "hello"}, {name: "res/l", typ: tar.TypeSymlink, link: "a"}, {name: "res/h", typ: tar.TypeLink, link: "res/a"}},
		{{name: "res/up", typ: tar.TypeSymlink, link: ".."}, {name: "res/up/.bashrc", body: "pwned"}},
		{{name: "res/etc", typ: tar.TypeSymlink, link: "/etc"}, {name: "res/etc/pwned", body: "x"}},
		{{name: "../../escape", body: "x"}},
		{{name: "/abs/file", body: "x"}},
		{{name: "res/s", body: "x", mode: 0o6755}},
		{{name: "res/h", typ: tar.TypeLink, link: "../outside/victim"}},
		{{name: "res/dev", typ: tar.TypeChar}, {name: "res/fifo", typ: tar.TypeFifo}},
		{{name: "res", body: "file first"}, {name: "res/x", body: "then a child"}},
	} {
		f.Add(mkTar(f, es...).Bytes())
	}
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0}, 1024))
}

// fuzzDirs makes base/dst (the target) and base/outside/victim, which no
// archive may change.
func fuzzDirs(t *testing.T) (dst, outside string) {
	base, err := os.MkdirTemp("", "fuzz-tar-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	dst = filepath.Join(base, "dst")
	outside = filepath.Join(base, "outside")
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outside, "victim"), []byte("intact"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dst, outside
}

func checkOutside(t *testing.T, outside string) {
	t.Helper()
	ents, err := os.ReadDir(outside)
	if err != nil || len(ents) != 1 || ents[0].Name() != "victim" {
		t.Fatalf("outside dir changed: %v %v", ents, err)
	}
	if b, err := os.ReadFile(filepath.Join(outside, "victim")); err != nil || string(b) != "intact" {
		t.Fatalf("victim changed: %q %v", b, err)
	}
	ents, err = os.ReadDir(filepath.Dir(outside))
	if err != nil || len(ents) != 2 {
		t.Fatalf("extraction created something beside its target: %v %v", ents, err)
	}
}

// FuzzExtract feeds arbitrary streams to the in-box extractor (boxinit and
// the agent run it inside the box on what the host sends): no panic, and
// nothing outside the target directory is created or changed.
func FuzzExtract(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		dst, outside := fuzzDirs(t)
		_ = tarutil.Extract(context.Background(), bytes.NewReader(b), dst)
		checkOutside(t, outside)
	})
}

// FuzzExtractUntrusted feeds arbitrary streams (what a hostile box can send
// back) to the host-side extractor: no panic, nothing outside the target,
// no entry outside top, and no setuid/setgid file.
func FuzzExtractUntrusted(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		dst, outside := fuzzDirs(t)
		root, err := os.OpenRoot(dst)
		if err != nil {
			t.Fatal(err)
		}
		defer root.Close()
		_ = tarutil.ExtractUntrusted(context.Background(), bytes.NewReader(b), root, "res", tarutil.Limits{MaxBytes: 1 << 20, MaxEntries: 1000})
		checkOutside(t, outside)
		ents, err := os.ReadDir(dst)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if e.Name() != "res" {
				t.Fatalf("entry %q beside the copied name", e.Name())
			}
		}
		filepath.Walk(dst, func(p string, fi os.FileInfo, err error) error {
			if err == nil && fi.Mode()&(os.ModeSetuid|os.ModeSetgid) != 0 {
				t.Fatalf("setuid/setgid file %s", p)
			}
			if err == nil && fi.Mode()&(os.ModeDevice|os.ModeCharDevice|os.ModeNamedPipe) != 0 {
				t.Fatalf("special file %s", p)
			}
			return nil
		})
	})
}
