package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/boxrun/boxrun/image/imagetest"
)

func TestCLI_ImagesLoadTagSave(t *testing.T) {
	s := newImageServer(t)
	dir := t.TempDir()
	arc := filepath.Join(dir, "py.tar")
	imagetest.WriteDockerArchive(t, arc, "python:3.12-slim", imagetest.BusyboxImage(t))
	out := filepath.Join(dir, "out.tar")
	never := filepath.Join(dir, "never.tar")
	bad := filepath.Join(dir, "bad.tar")
	if err := os.WriteFile(bad, []byte("not an archive"), 0o644); err != nil {
		t.Fatal(err)
	}
	runTable(t, s, []cliCase{
		{name: "load", args: []string{"images", "load", "-t", "mine:1", "--progress", "none", arc},
			wantStdout: []string{"Loaded python:3.12-slim (sha256:", "Loaded mine:1 (sha256:"}},
		{name: "tag", args: []string{"images", "tag", "mine:1", "corp.example/x:2"}, wantStdout: []string{"Tagged mine:1 as corp.example/x:2"}},
		{name: "ls", args: []string{"images", "ls"}, wantStdout: []string{"python:3.12-slim", "mine:1", "corp.example/x:2"}},
		{name: "create never", args: []string{"create", "--pull", "never", "--name", "p", "python:3.12-slim"}, wantStdout: []string{"Status: running"}},
		{name: "create missing default", args: []string{"create", "corp.example/x:2"}, wantStdout: []string{"Status: running"}},
		{name: "create never ghost", args: []string{"create", "--pull", "never", "ghost:1"}, wantCode: 1,
			wantStderr: []string{"[IMAGE_PULL_FAILED]", "images load"}},
		{name: "create bad pull", args: []string{"create", "--pull", "sometimes", "python"}, wantCode: 2, wantStderr: []string{"--pull"}},
		{name: "save", args: []string{"images", "save", "-o", out, "corp.example/x:2", "python:3.12-slim"}, wantStderr: []string{"Saved 2 image(s)"}},
		{name: "rm", args: []string{"images", "rm", "corp.example/x:2"}},
		{name: "load saved", args: []string{"images", "load", "--progress", "plain", out},
			wantStdout: []string{"Loaded corp.example/x:2", "Loaded python:3.12-slim"}},
		{name: "load stdin bad", args: []string{"images", "load", "-"}, stdin: "garbage", wantCode: 1, wantStderr: []string{"[VALIDATION_ERROR]"}},
		{name: "load bad", args: []string{"images", "load", bad}, wantCode: 1, wantStderr: []string{"[VALIDATION_ERROR]"}},
		{name: "save unknown", args: []string{"images", "save", "-o", never, "ghost:1"}, wantCode: 1, wantStderr: []string{"ghost:1"}},
		{name: "tag unknown", args: []string{"images", "tag", "ghost:1", "x:1"}, wantCode: 1, wantStderr: []string{"[VALIDATION_ERROR]"}},
	})
	if _, err := os.Stat(never); !os.IsNotExist(err) {
		t.Errorf("a failed save left %s: %v", never, err)
	}
	if fi, err := os.Stat(out); err != nil || fi.Size() == 0 {
		t.Errorf("save wrote nothing: %v", err)
	}
}

func TestCLI_ServeBadRegistryConfig(t *testing.T) {
	s := newTestServer(t)
	state := filepath.Join(t.TempDir(), "state")
	for _, args := range [][]string{
		{"--registry-mirror", "docker.io=ftp://mirror.example"},
		{"--registry-mirror", "no-equals-sign"},
		{"--insecure-registry", "http://x/y"},
		{"--registries", filepath.Join(t.TempDir(), "missing.json")},
	} {
		r := s.run(t, "", append([]string{"--state-dir", state, "serve", "--port", "0"}, args...)...)
		if r.code != 2 {
			t.Errorf("serve %v: code %d, stderr %q; want a usage error", args, r.code, r.stderr)
		}
		if _, err := os.Stat(state); !os.IsNotExist(err) {
			t.Errorf("serve %v touched the state dir", args)
		}
	}
}
