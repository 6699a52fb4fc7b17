package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/boxrun/boxrun/internal/testenv"
)

func TestCLI_Images(t *testing.T) {
	if _, err := os.Stat("/bin/busybox"); err != nil {
		testenv.Skip(t, "no /bin/busybox (apt install busybox-static)")
	}
	s := newImageServer(t)
	layout := filepath.Join(t.TempDir(), "bb")
	ref := "oci:" + layout
	runTable(t, s, []cliCase{
		{name: "empty", args: []string{"images"}, exactStdout: str("No images cached.\n")},
		{name: "build", args: []string{"images", "build-busybox", layout}, exactStdout: str("Wrote " + ref + "\n")},
		{name: "pull", args: []string{"images", "pull", "--progress", "plain", ref},
			wantStdout: []string{"Pulled " + ref, "sha256:"}, wantStderr: []string{"layer", "downloaded"}},
		{name: "pull again cached", args: []string{"images", "pull", "--progress", "none", ref}, wantStdout: []string{"Pulled " + ref}},
		{name: "ls", args: []string{"images", "ls"}, wantStdout: []string{"REF", ref, "MiB"}},
		{name: "ls json", args: []string{"images", "--json"}, wantStdout: []string{`"ref": "` + ref + `"`}},
		{name: "box from it", args: []string{"create", "--name", "bb", ref}, wantStdout: []string{"Status: running"}},
		{name: "prune keeps used", args: []string{"images", "prune"}, exactStdout: str("Removed 0 image(s)\n")},
		{name: "rm box", args: []string{"rm", "-f", "bb"}},
		{name: "rm image", args: []string{"images", "rm", ref}, exactStdout: str("Removed " + ref + "\n")},
		{name: "pull with bar", args: []string{"images", "pull", "--progress", "bar", ref}, wantStdout: []string{"Pulled " + ref}},
		{name: "rm again", args: []string{"images", "rm", ref}},
		{name: "ls after rm", args: []string{"images", "ls"}, exactStdout: str("No images cached.\n")},
		{name: "pull missing", args: []string{"images", "pull", "oci:" + filepath.Join(t.TempDir(), "none")}, wantCode: 1,
			wantStderr: []string{"[IMAGE_PULL_FAILED]"}},
		{name: "build bad busybox", args: []string{"images", "build-busybox", "--busybox", "/nonexistent", layout}, wantCode: 1},
	})
}
