package main

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/boxrun/boxrun"
)

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Error(err)
	}
	return string(b)
}

func TestCLI_Cp(t *testing.T) {
	s := newTestServer(t)
	if _, err := s.m.Create(context.Background(), boxrun.BoxSpec{Image: "busybox", Name: "files"}); err != nil {
		t.Fatal(err)
	}
	host := t.TempDir()
	writeFile(t, filepath.Join(host, "note.txt"), "a note\n")
	writeFile(t, filepath.Join(host, "proj", "main.go"), "package main\n")
	writeFile(t, filepath.Join(host, "proj", "lib", "lib.go"), "package lib\n")
	if err := os.MkdirAll(filepath.Join(host, "out"), 0o755); err != nil {
		t.Fatal(err)
	}
	var tarIn bytes.Buffer
	tw := tar.NewWriter(&tarIn)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "streamed.txt", Mode: 0o644, Size: 3})
	tw.Write([]byte("tar"))
	tw.Close()

	runTable(t, s, []cliCase{
		{name: "upload file", args: []string{"cp", filepath.Join(host, "note.txt"), "files:/root/docs/renamed.txt"},
			exactStdout: str("Uploaded to files:/root/docs/renamed.txt\n")},
		{name: "check file", args: []string{"exec", "files", "cat", "docs/renamed.txt"}, exactStdout: str("a note\n")},
		{name: "upload into existing dir", args: []string{"cp", filepath.Join(host, "note.txt"), "files:/root/docs"},
			exactStdout: str("Uploaded to files:/root/docs/note.txt\n")},
		{name: "upload into slash dir", args: []string{"cp", filepath.Join(host, "note.txt"), "files:/root/new/"},
			exactStdout: str("Uploaded to files:/root/new/note.txt\n")},
		{name: "upload dir", args: []string{"cp", filepath.Join(host, "proj"), "files:/root/code"},
			exactStdout: str("Uploaded to files:/root/code\n")},
		{name: "check dir", args: []string{"exec", "files", "cat", "code/main.go", "code/lib/lib.go"}, exactStdout: str("package main\npackage lib\n")},
		{name: "upload dir into dir", args: []string{"cp", filepath.Join(host, "proj"), "files:/root/code/"},
			exactStdout: str("Uploaded to files:/root/code/proj\n")},
		{name: "upload tar from stdin", args: []string{"cp", "-", "files:/root/t"}, stdin: tarIn.String()},
		{name: "check tar", args: []string{"exec", "files", "cat", "t/streamed.txt"}, exactStdout: str("tar")},
		{name: "download file", args: []string{"cp", "files:/root/docs/renamed.txt", filepath.Join(host, "back", "got.txt")},
			wantStdout: []string{"Downloaded to " + filepath.Join(host, "back", "got.txt")}},
		{name: "download into dir", args: []string{"cp", "files:/root/docs/note.txt", filepath.Join(host, "out")},
			wantStdout: []string{"Downloaded to " + filepath.Join(host, "out", "note.txt")}},
		{name: "download dir", args: []string{"cp", "files:/root/code", filepath.Join(host, "code-copy")}},
		{name: "missing local", args: []string{"cp", filepath.Join(host, "nope"), "files:/root/x"}, wantCode: 1,
			wantStderr: []string{"Error: File not found: " + filepath.Join(host, "nope")}},
		{name: "no box side", args: []string{"cp", "/a", "./b"}, wantCode: 2, wantStderr: []string{"One of src/dst must be in BOX:PATH format"}},
		{name: "missing box", args: []string{"cp", filepath.Join(host, "note.txt"), "nobox:/root/x"}, wantCode: 1, wantStderr: []string{"[BOX_NOT_FOUND]"}},
		{name: "download missing box", args: []string{"cp", "nobox:/root/x", filepath.Join(host, "x")}, wantCode: 1, wantStderr: []string{"[BOX_NOT_FOUND]"}},
		{name: "download missing file", args: []string{"cp", "files:/root/none.txt", filepath.Join(host, "x")}, wantCode: 1, wantStderr: []string{"Error:"}},
	})
	if got := readFile(t, filepath.Join(host, "back", "got.txt")); got != "a note\n" {
		t.Errorf("downloaded file = %q", got)
	}
	if got := readFile(t, filepath.Join(host, "out", "note.txt")); got != "a note\n" {
		t.Errorf("downloaded into dir = %q", got)
	}
	if got := readFile(t, filepath.Join(host, "code-copy", "lib", "lib.go")); got != "package lib\n" {
		t.Errorf("downloaded dir file = %q", got)
	}
	// A file keeps its permission bits (an executable stays one), not
	// its setuid bit.
	script := filepath.Join(host, "run.sh")
	writeFile(t, script, "#!/bin/sh\necho ran\n")
	if err := os.Chmod(script, 0o4750); err != nil {
		t.Fatal(err)
	}
	if r := s.run(t, "", "cp", script, "files:/root/bin/run.sh"); r.code != 0 {
		t.Fatalf("cp script: %d %s", r.code, r.stderr)
	}
	if r := s.run(t, "", "cp", "files:/root/bin/run.sh", filepath.Join(host, "run-back.sh")); r.code != 0 {
		t.Fatalf("cp script back: %d %s", r.code, r.stderr)
	}
	if fi, err := os.Stat(filepath.Join(host, "run-back.sh")); err != nil || fi.Mode().Perm() != 0o750 || fi.Mode()&os.ModeSetuid != 0 {
		t.Errorf("script copied in and out: mode %v, %v; want -rwxr-x---", fi.Mode(), err)
	}
	r := s.run(t, "", "cp", "files:/root/code/main.go", "-")
	tr := tar.NewReader(strings.NewReader(r.stdout))
	if h, err := tr.Next(); err != nil || h.Name != "main.go" {
		t.Errorf("cp to stdout: first entry %v, %v", h, err)
	}
}

func TestRemotePath(t *testing.T) {
	for _, tc := range []struct {
		arg, box, path string
		ok             bool
	}{
		{"web:/root/x", "web", "/root/x", true},
		{"box_V1St-XR8_Z5j:/a", "box_V1St-XR8_Z5j", "/a", true},
		{"/abs:thing", "", "", false},
		{"./rel:thing", "", "", false},
		{"plain", "", "", false},
		{":/x", "", "", false},
	} {
		box, p, ok := remotePath(tc.arg)
		if box != tc.box || p != tc.path || ok != tc.ok {
			t.Errorf("remotePath(%q) = %q, %q, %v", tc.arg, box, p, ok)
		}
	}
}

// TestCLI_CpHostile copies out of a box whose files are set up by an
// attacker: symlinks leading out (relative and absolute), setuid files. The
// copy keeps the symlinks as symlinks, strips setuid/setgid, and a later
// copy into a symlink's name never writes through it.
func TestCLI_CpHostile(t *testing.T) {
	s := newTestServer(t)
	ctx := context.Background()
	if _, err := s.m.Create(ctx, boxrun.BoxSpec{Image: "busybox", Name: "evil"}); err != nil {
		t.Fatal(err)
	}
	host := t.TempDir()
	victim := filepath.Join(host, "victim")
	writeFile(t, filepath.Join(victim, "f"), "host data\n")
	writeFile(t, filepath.Join(host, "out", ".bashrc"), "mine\n")
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range []*tar.Header{
		{Typeflag: tar.TypeDir, Name: "res/", Mode: 0o755},
		{Typeflag: tar.TypeSymlink, Name: "res/up", Linkname: ".."},
		{Typeflag: tar.TypeSymlink, Name: "res/abs", Linkname: victim},
		{Typeflag: tar.TypeReg, Name: "res/suid", Mode: 0o6755, Size: 5},
		{Typeflag: tar.TypeReg, Name: "f", Mode: 0o644, Size: 5},
	} {
		tw.WriteHeader(h)
		if h.Size > 0 {
			tw.Write([]byte("evil\n"))
		}
	}
	tw.Close()
	if err := s.m.CopyIn(ctx, "evil", "/root", &buf); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(host, "out")
	runTable(t, s, []cliCase{
		{name: "copy the tree", args: []string{"cp", "evil:/root/res", out + "/"},
			wantStdout: []string{"Downloaded to " + filepath.Join(out, "res")}},
		{name: "into a symlink's name replaces it", args: []string{"cp", "evil:/root/f", filepath.Join(out, "res", "abs")}},
		{name: "into a symlink dir is refused", args: []string{"cp", "evil:/root/f", filepath.Join(out, "res", "up") + "/"},
			wantCode: 1, wantStderr: []string{"symbolic link"}},
		{name: "missing path fails", args: []string{"cp", "evil:/root/missing", filepath.Join(host, "m")}, wantCode: 1,
			wantStderr: []string{"not found"}, wantNotOut: []string{"Downloaded"}},
	})
	if got := readFile(t, filepath.Join(victim, "f")); got != "host data\n" {
		t.Errorf("victim written through a symlink: %q", got)
	}
	if got := readFile(t, filepath.Join(out, ".bashrc")); got != "mine\n" {
		t.Errorf(".bashrc = %q", got)
	}
	if l, err := os.Readlink(filepath.Join(out, "res", "up")); err != nil || l != ".." {
		t.Errorf("res/up = %q, %v; want the symlink kept as is", l, err)
	}
	if got := readFile(t, filepath.Join(out, "res", "abs")); got != "evil\n" {
		t.Errorf("res/abs = %q, want the copied file in place of the symlink", got)
	}
	if fi, err := os.Stat(filepath.Join(out, "res", "suid")); err != nil || fi.Mode()&(os.ModeSetuid|os.ModeSetgid) != 0 {
		t.Errorf("res/suid: %v %v, want no setuid/setgid", fi.Mode(), err)
	}
	for _, p := range []string{filepath.Join(host, "f"), filepath.Join(out, "f"), filepath.Join(host, "m")} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s was created", p)
		}
	}
}
