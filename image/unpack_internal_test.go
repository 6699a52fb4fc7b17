package image

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

type tentry struct {
	name, link string
	typ        byte
	mode       int64
	body       string
}

func mkTar(t testing.TB, es ...tentry) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range es {
		hdr := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: e.mode, Size: int64(len(e.body))}
		if e.typ != tar.TypeReg {
			hdr.Size = 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, e.body)
	}
	tw.Close()
	return buf.Bytes()
}

func TestUnpackTar_Replacements(t *testing.T) {
	root := t.TempDir()
	meta, err := unpackTar(context.Background(), bytes.NewReader(mkTar(t,
		tentry{name: "a/", typ: tar.TypeDir, mode: 0o555},
		tentry{name: "a/f", typ: tar.TypeReg, mode: 0o644, body: "1"},
		tentry{name: "a", typ: tar.TypeReg, mode: 0o600, body: "dir became file"},
		tentry{name: "b", typ: tar.TypeReg, mode: 0o644, body: "file"},
		tentry{name: "b", typ: tar.TypeSymlink, link: "a"},
		tentry{name: "c", typ: tar.TypeReg, mode: 0o644, body: "old"},
		tentry{name: "c", typ: tar.TypeReg, mode: 0o644, body: "new"},
		tentry{name: "./d/./e/", typ: tar.TypeDir, mode: 0o711},
		tentry{name: "x/y/z", typ: tar.TypeReg, mode: 0o644, body: "deep"},
		tentry{name: "fifo", typ: tar.TypeFifo, mode: 0o600},
		tentry{name: "/", typ: tar.TypeDir, mode: 0o700},
	)), root, os.Geteuid() == 0)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "a")); string(b) != "dir became file" {
		t.Errorf("a = %q", b)
	}
	if fi, _ := os.Lstat(filepath.Join(root, "a")); fi.Mode().Perm() != 0o600 {
		t.Errorf("a mode = %v: the replaced directory's mode was applied", fi.Mode())
	}
	if l, _ := os.Readlink(filepath.Join(root, "b")); l != "a" {
		t.Errorf("b -> %q", l)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "c")); string(b) != "new" {
		t.Errorf("c = %q", b)
	}
	if fi, err := os.Stat(filepath.Join(root, "d/e")); err != nil || fi.Mode().Perm()&0o711 != 0o711 {
		t.Errorf("d/e: %v %v", fi, err)
	}
	if fi, err := os.Lstat(filepath.Join(root, "fifo")); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("fifo: %v %v", fi, err)
	}
	if fi, _ := os.Stat(root); fi.Mode().Perm() != 0o755 {
		t.Errorf("root mode = %v, want 0755 whatever the tar says", fi.Mode())
	}
	slices.Sort(meta.Implicit)
	if want := []string{"d", "x", "x/y"}; !slices.Equal(meta.Implicit, want) {
		t.Errorf("implicit = %q, want %q", meta.Implicit, want)
	}
}

func TestUnpackTar_DeferredLink(t *testing.T) {
	root := t.TempDir()
	meta, err := unpackTar(context.Background(), bytes.NewReader(mkTar(t,
		tentry{name: "bin/", typ: tar.TypeDir, mode: 0o755},
		tentry{name: "bin/here", typ: tar.TypeReg, mode: 0o755, body: "x"},
		tentry{name: "bin/here2", typ: tar.TypeLink, link: "bin/here"},
		tentry{name: "bin/lower", typ: tar.TypeLink, link: "/usr/bin/tool"},
	)), root, false)
	if err != nil {
		t.Fatal(err)
	}
	if want := []hardlink{{Name: "bin/lower", Target: "usr/bin/tool"}}; !slices.Equal(meta.Links, want) {
		t.Errorf("links = %+v, want %+v", meta.Links, want)
	}
	a, _ := os.Stat(filepath.Join(root, "bin/here"))
	b, _ := os.Stat(filepath.Join(root, "bin/here2"))
	if !os.SameFile(a, b) {
		t.Errorf("bin/here2 is not a link to bin/here")
	}
}

func TestUnpackTar_Errors(t *testing.T) {
	for name, tr := range map[string][]tentry{
		"DotDot":         {{name: "../x", typ: tar.TypeReg}},
		"LinkToRoot":     {{name: "l", typ: tar.TypeLink, link: "/"}},
		"LinkToDir":      {{name: "d/", typ: tar.TypeDir, mode: 0o755}, {name: "l", typ: tar.TypeLink, link: "d"}},
		"ThroughSymlink": {{name: "s", typ: tar.TypeSymlink, link: "."}, {name: "s/f", typ: tar.TypeReg}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := unpackTar(context.Background(), bytes.NewReader(mkTar(t, tr...)), t.TempDir(), false)
			if !errors.Is(err, errUnsafe) {
				t.Errorf("err = %v, want errUnsafe", err)
			}
		})
	}
}

func TestCleanName(t *testing.T) {
	for in, want := range map[string]string{
		"a/b": "a/b", "./a/b/": "a/b", "/a": "a", "//a//b": "a/b", "/../a": "a", "a/../b": "b", ".": "", "/": "",
	} {
		if got, err := cleanName(in); err != nil || got != want {
			t.Errorf("cleanName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"..", "../a", "a/../../b"} {
		if _, err := cleanName(in); !errors.Is(err, errUnsafe) {
			t.Errorf("cleanName(%q): err = %v, want errUnsafe", in, err)
		}
	}
}

func TestParseRef(t *testing.T) {
	dir := t.TempDir()
	colon := filepath.Join(dir, "odd:name")
	os.Mkdir(colon, 0o755)
	tarPath := filepath.Join(dir, "img.tar")
	os.WriteFile(tarPath, nil, 0o644)
	tests := []struct {
		ref, key, tag, digest string
		kind                  sourceKind
	}{
		{ref: "alpine", kind: kindRegistry, key: "index.docker.io/library/alpine:latest"},
		{ref: "docker.io/library/ubuntu:24.04", kind: kindRegistry, key: "index.docker.io/library/ubuntu:24.04"},
		{ref: "localhost:5000/x/y:t", kind: kindRegistry, key: "localhost:5000/x/y:t"},
		{ref: "oci:" + colon, kind: kindOCI, key: "oci:" + colon},
		{ref: "oci:" + colon + ":v1", kind: kindOCI, key: "oci:" + colon + ":v1", tag: "v1"},
		{ref: "oci:" + colon + "@sha256:" + sixtyFour, kind: kindOCI, key: "oci:" + colon + "@sha256:" + sixtyFour, digest: "sha256:" + sixtyFour},
		{ref: "docker-archive:" + tarPath, kind: kindArchive, key: "docker-archive:" + tarPath},
		{ref: "docker-archive:" + tarPath + ":localhost:5000/a/b:c", kind: kindArchive, key: "docker-archive:" + tarPath + ":localhost:5000/a/b:c"},
		{ref: "dir:" + dir, kind: kindDir, key: "dir:" + dir},
	}
	for _, tt := range tests {
		src, err := parseRef(tt.ref, nil)
		if err != nil {
			t.Errorf("parseRef(%q): %v", tt.ref, err)
			continue
		}
		if src.kind != tt.kind || src.key != tt.key || src.tag != tt.tag || digestString(src.digest) != tt.digest {
			t.Errorf("parseRef(%q) = %s %q tag %q digest %q", tt.ref, src.kind, src.key, src.tag, digestString(src.digest))
		}
	}
}

const sixtyFour = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
