package boxruntest

import (
	"archive/tar"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"

	"github.com/boxrun/boxrun"
)

// testCopy covers CopyIn and CopyOut on the shared sandbox.
func (s *suite) testCopy(t *testing.T) {
	t.Run("RoundTrip", func(t *testing.T) {
		bin := make([]byte, 1<<20)
		if _, err := rand.Read(bin); err != nil {
			t.Fatal(err)
		}
		want := []tarEntry{
			{Name: "rt/", Type: tar.TypeDir, Mode: 0o755},
			{Name: "rt/bin.dat", Type: tar.TypeReg, Mode: 0o600, Body: string(bin)},
			{Name: "rt/exe", Type: tar.TypeReg, Mode: 0o755, Body: "#!/bin/sh\necho ok\n"},
			{Name: "rt/link", Type: tar.TypeSymlink, Mode: 0o777, Link: "sub/t.txt"},
			{Name: "rt/sub/", Type: tar.TypeDir, Mode: 0o750},
			{Name: "rt/sub/empty/", Type: tar.TypeDir, Mode: 0o755},
			{Name: "rt/sub/t.txt", Type: tar.TypeReg, Mode: 0o644, Body: "text\n"},
		}
		if err := s.d.CopyIn(t.Context(), s.shared, "/tmp/copy-rt", mkTar(t, want...)); err != nil {
			t.Fatalf("CopyIn: %v", err)
		}
		var out bytes.Buffer
		if err := s.d.CopyOut(t.Context(), s.shared, "/tmp/copy-rt/rt", &out); err != nil {
			t.Fatalf("CopyOut: %v", err)
		}
		got := readTar(t, &out)
		if !slices.EqualFunc(got, want, entryEqual) {
			t.Errorf("CopyOut after CopyIn:\n got %s\nwant %s", describe(got), describe(want))
		}
		// The files are visible to processes too.
		r := s.run(t, s.shared, sh("/tmp/copy-rt", "cat rt/link; sha256sum rt/bin.dat"))
		if wantOut := fmt.Sprintf("text\n%x  rt/bin.dat\n", sha256.Sum256(bin)); r.stdout != wantOut {
			t.Errorf("in the box: %q, want %q", r.stdout, wantOut)
		}
	})

	t.Run("OutOfExec", func(t *testing.T) {
		// Exec needs an existing working directory (a missing one is an error).
		if r := s.run(t, s.shared, sh("/tmp", "mkdir -p copy-out")); r.code != 0 {
			t.Fatalf("setup: code %d, stderr %q", r.code, r.stderr)
		}
		r := s.run(t, s.shared, sh("/tmp/copy-out", "printf hello > made.txt && mkdir -p d/e && printf x > d/e/f && ln -s /etc/passwd d/abs"))
		if r.code != 0 {
			t.Fatalf("setup: code %d, stderr %q", r.code, r.stderr)
		}
		for _, c := range []struct {
			src  string
			want []string
		}{
			{"/tmp/copy-out/made.txt", []string{"made.txt=hello"}},
			{"/tmp/copy-out/d", []string{"d/=", "d/abs=->/etc/passwd", "d/e/=", "d/e/f=x"}},
		} {
			var out bytes.Buffer
			if err := s.d.CopyOut(t.Context(), s.shared, c.src, &out); err != nil {
				t.Fatalf("CopyOut %s: %v", c.src, err)
			}
			var got []string
			for _, e := range readTar(t, &out) {
				if e.Type == tar.TypeSymlink { // stored as a symlink, not followed
					e.Body = "->" + e.Link
				}
				got = append(got, e.Name+"="+e.Body)
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("CopyOut %s: %q, want %q", c.src, got, c.want)
			}
		}
		// CopyIn replaces an existing file.
		if err := s.d.CopyIn(t.Context(), s.shared, "/tmp/copy-out", mkTar(t, tarEntry{Name: "made.txt", Body: "replaced"})); err != nil {
			t.Fatal(err)
		}
		if got := s.run(t, s.shared, sh("/tmp/copy-out", "cat made.txt")).stdout; got != "replaced" {
			t.Errorf("after CopyIn over it, made.txt = %q", got)
		}
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		err := s.d.CopyOut(t.Context(), s.shared, "/no/such/path", io.Discard)
		if !errors.Is(err, boxrun.ErrNotFound) {
			t.Errorf("CopyOut of a missing path: %v, want ErrNotFound", err)
		}
	})

	t.Run("ErrEscape", func(t *testing.T) {
		const dst = "/tmp/esc/in"
		if r := s.run(t, s.shared, sh("/tmp", "mkdir -p esc/in && ln -s / esc/in/planted")); r.code != 0 {
			t.Fatalf("setup: code %d, stderr %q", r.code, r.stderr)
		}
		cases := map[string][]tarEntry{
			"DotDot":   {{Name: "../evil-dotdot", Body: "x"}},
			"Absolute": {{Name: "/evil-abs", Body: "x"}},
			"SymlinkUp": {
				{Name: "up", Type: tar.TypeSymlink, Link: "../../../../../../../.."},
				{Name: "up/evil-up", Body: "x"},
			},
			"SymlinkAbsolute": {
				{Name: "root", Type: tar.TypeSymlink, Link: "/"},
				{Name: "root/evil-root", Body: "x"},
			},
			"PlantedSymlink": {{Name: "planted/evil-planted", Body: "x"}},
			"Hardlink":       {{Name: "h", Type: tar.TypeLink, Link: "../../../../etc/passwd"}},
		}
		for name, entries := range cases {
			err := s.d.CopyIn(t.Context(), s.shared, dst, mkTar(t, entries...))
			if !errors.Is(err, boxrun.ErrInvalid) {
				t.Errorf("%s: CopyIn = %v, want ErrInvalid", name, err)
			}
		}
		for _, p := range []string{"/tmp/esc/evil-dotdot", "/evil-abs", dst + "/evil-abs", "/evil-up", "/evil-root", "/evil-planted", dst + "/h"} {
			if err := s.d.CopyOut(t.Context(), s.shared, p, io.Discard); !errors.Is(err, boxrun.ErrNotFound) {
				t.Errorf("after the rejected copies, %s: CopyOut = %v, want ErrNotFound", p, err)
			}
		}
	})
}

// entryEqual compares tar entries by name, type, content and link; modes
// of symlinks are not compared (Linux has none).
func entryEqual(a, b tarEntry) bool {
	if a.Name != b.Name || a.Type != b.Type || a.Body != b.Body || a.Link != b.Link {
		return false
	}
	return a.Type == tar.TypeSymlink || a.Mode == b.Mode
}

// describe lists entries compactly, with bodies hashed.
func describe(es []tarEntry) string {
	var b bytes.Buffer
	for _, e := range es {
		fmt.Fprintf(&b, "\n  %c %s %o %x %q", e.Type, e.Name, e.Mode, sha256.Sum256([]byte(e.Body)), e.Link)
	}
	return b.String()
}
