package image_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/boxrun/boxrun/image/imagetest"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// TestPull_MaliciousLayers pulls layers crafted to write outside the
// rootfs. Each either fails the pull or lands inside the rootfs; nothing
// outside changes.
func TestPull_MaliciousLayers(t *testing.T) {
	type layer = []imagetest.Entry
	outside := t.TempDir() // holds "victim"; must stay exactly so
	rel := strings.TrimPrefix(outside, "/")
	up := strings.Repeat("../", 40)
	tests := []struct {
		name   string
		layers []layer
		ok     bool // the pull succeeds (harmlessly)
		check  func(t *testing.T, rootfs string)
	}{
		{name: "DotDot", layers: []layer{{imagetest.File(up+rel+"/pwned", 0o644, "x")}}},
		{name: "DotDotInside", layers: []layer{{imagetest.File("a/../../pwned", 0o644, "x")}}},
		{name: "Absolute", ok: true, layers: []layer{{imagetest.File(outside+"/pwned", 0o644, "x")}},
			check: func(t *testing.T, rootfs string) {
				if !exists(rootfs, rel+"/pwned") {
					t.Errorf("absolute entry not placed inside the rootfs")
				}
			}},
		{name: "SymlinkThenWrite", layers: []layer{{
			imagetest.Symlink("evil", outside),
			imagetest.File("evil/pwned", 0o644, "x"),
		}}},
		{name: "RelativeSymlinkThenWrite", layers: []layer{{
			imagetest.Symlink("evil", up),
			imagetest.File("evil/"+rel+"/pwned", 0o644, "x"),
		}}},
		{name: "SymlinkThenDir", layers: []layer{{
			imagetest.Symlink("evil", outside),
			imagetest.Dir("evil/sub/", 0o755),
		}}},
		{name: "SymlinkThenHardlink", layers: []layer{{
			imagetest.Symlink("evil", outside),
			imagetest.File("f", 0o644, "x"),
			imagetest.Hardlink("evil/pwned", "f"),
		}}},
		{name: "HardlinkDotDot", layers: []layer{{imagetest.Hardlink("hl", up+"etc/passwd")}}},
		{name: "HardlinkAbsolute", layers: []layer{{imagetest.Hardlink("hl", "/etc/passwd")}}},
		{name: "HardlinkThroughSymlink", layers: []layer{
			{imagetest.Symlink("etc", "/etc")},
			{imagetest.Hardlink("hl", "etc/passwd")},
		}},
		{name: "HardlinkThroughSymlinkSameLayer", layers: []layer{{
			imagetest.Symlink("etc", "/etc"),
			imagetest.Hardlink("hl", "etc/passwd"),
		}}},
		{name: "SymlinkInLowerLayer", ok: true, layers: []layer{
			{imagetest.Symlink("evil", outside)},
			{imagetest.Dir("evil/", 0o755), imagetest.File("evil/pwned", 0o644, "x")},
		}, check: func(t *testing.T, rootfs string) {
			if fi, err := os.Lstat(filepath.Join(rootfs, "evil")); err != nil || !fi.IsDir() {
				t.Errorf("evil should now be a real directory: %v", err)
			}
		}},
		{name: "SymlinkInLowerLayerImplicitDir", ok: true, layers: []layer{
			{imagetest.Symlink("evil", outside)},
			{imagetest.File("evil/pwned", 0o644, "x")},
		}},
		{name: "WhiteoutThroughSymlink", ok: true, layers: []layer{
			{imagetest.Symlink("evil", outside)},
			{imagetest.Whiteout("evil/victim")},
		}},
		{name: "OpaqueThroughSymlink", ok: true, layers: []layer{
			{imagetest.Symlink("evil", outside)},
			{imagetest.Opaque("evil")},
		}},
		{name: "WhiteoutDotDot", ok: true, layers: []layer{
			{imagetest.File("x", 0o644, "x")},
			{imagetest.File("sub/.wh..", 0o644, ""), imagetest.File(".wh..", 0o644, "")},
		}, check: func(t *testing.T, rootfs string) {
			if !exists(rootfs, "x") {
				t.Errorf("whiteout of .. removed a sibling")
			}
		}},
	}
	host := imagetest.Registry(t)
	s := MustOpen(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := os.WriteFile(filepath.Join(outside, "victim"), []byte("intact"), 0o644); err != nil {
				t.Fatal(err)
			}
			var layers []v1.Layer
			for _, l := range tt.layers {
				layers = append(layers, imagetest.Layer(t, l...))
			}
			ref := imagetest.Push(t, host, "evil/"+strings.ToLower(tt.name), imagetest.Image(t, v1.Config{}, layers...))
			img, err := s.Pull(context.Background(), ref, nil)
			switch {
			case tt.ok && err != nil:
				t.Fatalf("pull failed: %v", err)
			case !tt.ok && err == nil:
				t.Errorf("pull succeeded, want it refused")
			case !tt.ok:
				wantPullFailed(t, err, ref, "")
			}
			if got := entries(t, outside); len(got) != 1 || got[0] != "victim" {
				t.Errorf("outside dir holds %q, want only victim", got)
			}
			if got := readFile(t, outside, "victim"); got != "intact" {
				t.Errorf("victim = %q", got)
			}
			if img != nil {
				if tt.check != nil {
					tt.check(t, img.Rootfs)
				}
				noHostLinks(t, img.Rootfs)
			}
		})
	}
	// Nothing half-made stays around from the refused pulls.
	tmp := entries(t, filepath.Join(s.Dir(), "tmp"))
	for _, name := range tmp {
		if !strings.HasSuffix(name, ".lock") {
			if got := entries(t, filepath.Join(s.Dir(), "tmp", name)); len(got) != 0 {
				t.Errorf("work dir %s holds %q", name, got)
			}
		}
	}
}

// noHostLinks fails if a file in rootfs is a hard link to /etc/passwd.
func noHostLinks(t *testing.T, rootfs string) {
	t.Helper()
	host, err := os.Stat("/etc/passwd")
	if err != nil {
		return
	}
	filepath.Walk(rootfs, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() && fi.Sys().(*syscall.Stat_t).Nlink > 1 && os.SameFile(fi, host) {
			t.Errorf("%s is a hard link to the host's /etc/passwd", p)
		}
		return nil
	})
}
