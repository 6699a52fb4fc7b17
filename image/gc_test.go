package image_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/image/imagetest"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestStore_ListRemovePrune(t *testing.T) {
	ctx := context.Background()
	host := imagetest.Registry(t)
	base := imagetest.Layer(t, imagetest.File("base", 0o644, "shared"))
	a := imagetest.Image(t, v1.Config{}, base, imagetest.Layer(t, imagetest.File("top", 0o644, "a")))
	b := imagetest.Image(t, v1.Config{}, base, imagetest.Layer(t, imagetest.File("top", 0o644, "b")))
	refA := imagetest.Push(t, host, "app/a:1", a)
	refB := imagetest.Push(t, host, "app/b:1", b)
	s := MustOpen(t)
	imgA := MustPull(t, s, refA)
	imgB := MustPull(t, s, refB)
	MustPull(t, s, host+"/app/a@"+imgA.Digest) // a second name for a

	list, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 {
		t.Fatalf("List = %+v, want 3 references", list)
	}
	byRef := map[string]boxapi.ImageInfo{}
	for _, info := range list {
		byRef[info.Ref] = info
	}
	if got := byRef[refA]; got.Digest != imgA.Digest || got.Size <= 0 || got.Created != "2024-01-01T00:00:00+00:00" {
		t.Errorf("List entry of a = %+v", got)
	}
	if got := byRef[refB].Digest; got != imgB.Digest {
		t.Errorf("List digest of b = %s, want %s", got, imgB.Digest)
	}

	count := func(dir string) int { return len(entries(t, filepath.Join(s.Dir(), dir, "sha256"))) }
	// Blobs: 3 layers and 2 configs (kept for Save).
	if count("layers") != 3 || count("blobs") != 5 || count("rootfs") != 2 {
		t.Fatalf("cache holds %d layers, %d blobs, %d rootfs; want 3, 5, 2", count("layers"), count("blobs"), count("rootfs"))
	}

	// Keep a (by its short ref form): b goes, with its own layer only.
	n, err := s.Prune(ctx, []string{refA})
	if err != nil || n != 1 {
		t.Fatalf("Prune = %d, %v; want 1", n, err)
	}
	if count("layers") != 2 || count("blobs") != 3 || count("rootfs") != 1 {
		t.Errorf("after Prune: %d layers, %d blobs, %d rootfs; want 2, 3, 1", count("layers"), count("blobs"), count("rootfs"))
	}
	if _, err := os.Stat(filepath.Join(imgA.Rootfs, "top")); err != nil {
		t.Errorf("a's rootfs damaged: %v", err)
	}
	if _, err := os.Stat(imgB.Rootfs); !os.IsNotExist(err) {
		t.Errorf("b's rootfs still there: %v", err)
	}
	if list, _ := s.List(ctx); len(list) != 2 {
		t.Errorf("List after Prune = %+v, want a's 2 references", list)
	}

	// Remove forgets one name; a stays until its last name goes. Prune
	// keeps what is named by digest even with no reference left.
	if err := s.Remove(ctx, refA); err != nil {
		t.Fatal(err)
	}
	if list, _ := s.List(ctx); len(list) != 1 {
		t.Errorf("List after Remove = %+v, want 1", list)
	}
	if err := s.Remove(ctx, imgA.Digest); err != nil { // every name of a
		t.Fatal(err)
	}
	if list, _ := s.List(ctx); len(list) != 0 {
		t.Errorf("List = %+v, want none", list)
	}
	if err := s.Remove(ctx, refA); !errors.Is(err, boxapi.ErrNotFound) {
		t.Errorf("Remove again: %v, want ErrNotFound", err)
	}
	if _, err := os.Stat(imgA.Rootfs); err != nil {
		t.Errorf("Remove deleted the rootfs (a box may use it): %v", err)
	}
	if n, err := s.Prune(ctx, []string{imgA.Digest}); err != nil || n != 0 || count("rootfs") != 1 {
		t.Errorf("Prune keeping a's digest = %d, %v; %d rootfs left", n, err, count("rootfs"))
	}
	if n, err := s.Prune(ctx, nil); err != nil || n != 1 {
		t.Errorf("Prune(nil) = %d, %v; want 1", n, err)
	}
	if count("layers")+count("blobs")+count("rootfs") != 0 {
		t.Errorf("cache not empty: %d layers, %d blobs, %d rootfs", count("layers"), count("blobs"), count("rootfs"))
	}

	// And it all comes back.
	if got := readFile(t, MustPull(t, s, refB).Rootfs, "top"); got != "b" {
		t.Errorf("top = %q", got)
	}
}

// TestStore_CrashLeftovers checks that Open removes what a crashed store
// left in its work dir, and keeps the work dirs of live stores.
func TestStore_CrashLeftovers(t *testing.T) {
	dir := t.TempDir()
	live := MustOpenDir(t, dir)
	// A crashed store: a work dir with a half-unpacked layer and a lock
	// file nobody holds, older than a minute.
	crashed := filepath.Join(dir, "tmp", "s999")
	os.MkdirAll(filepath.Join(crashed, "layer-1", "fs", "usr"), 0o755)
	os.WriteFile(crashed+".lock", nil, 0o644)
	old := mustTime(t, "2020-01-01T00:00:00Z")
	os.Chtimes(crashed, old, old)
	os.Chtimes(crashed+".lock", old, old)

	MustOpenDir(t, dir)
	if _, err := os.Stat(crashed); !os.IsNotExist(err) {
		t.Errorf("crashed work dir still there: %v", err)
	}
	if _, err := os.Stat(crashed + ".lock"); !os.IsNotExist(err) {
		t.Errorf("crashed lock file still there: %v", err)
	}
	n := 0
	for _, e := range entries(t, filepath.Join(dir, "tmp")) {
		if filepath.Ext(e) == ".lock" {
			n++
		}
	}
	if n != 2 {
		t.Errorf("tmp has %d lock files, want 2 (the live stores)", n)
	}
	_ = live
}
