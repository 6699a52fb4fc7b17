package gvisor_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/internal/testenv"
	"github.com/boxrun/boxrun/sandbox"
)

// tarOf builds a tar stream from name→content pairs; a name ending in "/"
// is a directory, content "->target" a symlink.
func tarOf(t testing.TB, entries ...string) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i := 0; i+1 < len(entries); i += 2 {
		name, body := entries[i], entries[i+1]
		hdr := &tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}
		switch {
		case strings.HasSuffix(name, "/"):
			hdr.Typeflag, hdr.Mode, hdr.Size = tar.TypeDir, 0o755, 0
		case strings.HasPrefix(body, "->"):
			hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeSymlink, body[2:], 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if hdr.Typeflag == tar.TypeReg {
			io.WriteString(tw, body)
		}
	}
	tw.Close()
	return &buf
}

// tarNames lists the entries of a tar stream with the contents of files.
func tarNames(t testing.TB, r io.Reader) []string {
	t.Helper()
	tr := tar.NewReader(r)
	var out []string
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		s := hdr.Name
		if hdr.Typeflag == tar.TypeReg {
			b, _ := io.ReadAll(tr)
			s += "=" + string(b)
		}
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

func TestDriver_Copy(t *testing.T) {
	ctx := context.Background()
	d, _ := newDriver(t)
	img := &sandbox.Image{Ref: "busybox", Rootfs: busyboxRootfs(t)}
	h := create(t, d, sandbox.Spec{BoxID: "copy", Image: img, Workdir: "/root"})

	t.Run("InOut", func(t *testing.T) {
		if err := d.CopyIn(ctx, h, "/data/in", tarOf(t, "d/", "", "d/a.txt", "hello", "b.txt", "world", "l", "->d/a.txt")); err != nil {
			t.Fatal(err)
		}
		if out, _, _ := run(t, d, h, nil, "cat", "/data/in/d/a.txt", "/data/in/b.txt", "/data/in/l"); out != "helloworldhello" {
			t.Fatalf("in box: %q", out)
		}
		var buf bytes.Buffer
		if err := d.CopyOut(ctx, h, "/data/in", &buf); err != nil {
			t.Fatal(err)
		}
		got := strings.Join(tarNames(t, &buf), " ")
		if want := "in/ in/b.txt=world in/d/ in/d/a.txt=hello in/l"; got != want {
			t.Fatalf("copy out: %q, want %q", got, want)
		}
		buf.Reset()
		if err := d.CopyOut(ctx, h, "/data/in/b.txt", &buf); err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(tarNames(t, &buf), " "); got != "b.txt=world" {
			t.Fatalf("single file: %q", got)
		}
	})
	t.Run("RelativeToWorkdir", func(t *testing.T) {
		if err := d.CopyIn(ctx, h, "rel", tarOf(t, "x", "1")); err != nil {
			t.Fatal(err)
		}
		if out, _, _ := run(t, d, h, nil, "cat", "/root/rel/x"); out != "1" {
			t.Fatalf("got %q", out)
		}
	})
	t.Run("ErrNotFound", func(t *testing.T) {
		err := d.CopyOut(ctx, h, "/no/such/file", io.Discard)
		if !errors.Is(err, boxapi.ErrNotFound) {
			t.Fatalf("err = %v, want ErrNotFound", err)
		}
	})
	t.Run("ErrEscape", func(t *testing.T) {
		for name, tr := range map[string]*bytes.Buffer{
			"dotdot":   tarOf(t, "../escaped", "x"),
			"absolute": tarOf(t, "/escaped", "x"),
			"symlink":  tarOf(t, "link", "->/etc", "link/escaped", "x"),
			"symlink2": tarOf(t, "up", "->../../..", "up/escaped", "x"),
		} {
			err := d.CopyIn(ctx, h, "/tmp/esc", tr)
			if !errors.Is(err, boxapi.ErrInvalid) {
				t.Errorf("%s: err = %v, want ErrInvalid", name, err)
			}
		}
		if out, _, _ := run(t, d, h, nil, "sh", "-c", "ls /escaped /tmp/escaped /etc/escaped 2>/dev/null; true"); out != "" {
			t.Fatalf("escaped files: %q", out)
		}
	})
	t.Run("ErrBadTar", func(t *testing.T) {
		err := d.CopyIn(ctx, h, "/tmp/bad", strings.NewReader(strings.Repeat("not a tar ", 100)))
		if !errors.Is(err, boxapi.ErrInvalid) {
			t.Fatalf("err = %v, want ErrInvalid", err)
		}
	})
	t.Run("Large", func(t *testing.T) {
		big := strings.Repeat("0123456789abcdef", 1<<20) // 16 MiB
		if err := d.CopyIn(ctx, h, "/tmp/big", tarOf(t, "f", big)); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := d.CopyOut(ctx, h, "/tmp/big/f", &buf); err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(&buf)
		if _, err := tr.Next(); err != nil {
			t.Fatal(err)
		}
		if b, _ := io.ReadAll(tr); string(b) != big {
			t.Fatalf("round trip: %d bytes", len(b))
		}
	})
}

// TestDriver_Scratch runs a box whose image holds one static binary: no
// shell, no tar, no directories.
func TestDriver_Scratch(t *testing.T) {
	ctx := context.Background()
	d, _ := newDriver(t)
	rootfs := filepath.Join(t.TempDir(), "scratch")
	os.Mkdir(rootfs, 0o755)
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		testenv.Skip(t, "no /bin/busybox")
	}
	if err := os.WriteFile(filepath.Join(rootfs, "busybox"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	h := create(t, d, sandbox.Spec{BoxID: "scratch", Image: &sandbox.Image{Ref: "scratch", Rootfs: rootfs}, Workdir: "/work"})

	if out, _, code := run(t, d, h, nil, "/busybox", "echo", "hi"); out != "hi\n" || code != 0 {
		t.Fatalf("exec: %q %d", out, code)
	}
	if _, err := d.Exec(ctx, h, sandbox.ProcessSpec{Cmd: []string{"sh"}}); !errors.Is(err, boxapi.ErrInvalid) {
		t.Fatalf("exec of a missing shell: %v", err)
	}
	if err := d.CopyIn(ctx, h, "/work", tarOf(t, "f.txt", "scratch")); err != nil {
		t.Fatal(err)
	}
	if out, _, _ := run(t, d, h, nil, "/busybox", "cat", "/work/f.txt"); out != "scratch" {
		t.Fatalf("cat: %q", out)
	}
	var buf bytes.Buffer
	if err := d.CopyOut(ctx, h, "/work", &buf); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(tarNames(t, &buf), " "); got != "work/ work/f.txt=scratch" {
		t.Fatalf("copy out: %q", got)
	}
	// Stop and start keep the copied file.
	if err := d.Stop(ctx, h); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx, h); err != nil {
		t.Fatal(err)
	}
	if out, _, _ := run(t, d, h, nil, "/busybox", "cat", "/work/f.txt"); out != "scratch" {
		t.Fatalf("after restart: %q", out)
	}
	if ents, _ := os.ReadDir(rootfs); len(ents) != 1 {
		t.Fatalf("image dir changed: %d entries", len(ents))
	}
}
