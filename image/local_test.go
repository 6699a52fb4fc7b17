package image_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/boxrun/boxrun/image"
	"github.com/boxrun/boxrun/image/imagetest"
	"github.com/boxrun/boxrun/internal/testenv"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

func testImage(t *testing.T, marker string) v1.Image {
	return imagetest.Image(t, v1.Config{Cmd: []string{"run", marker}},
		imagetest.Layer(t, imagetest.Dir("etc/", 0o755), imagetest.File("etc/os", 0o644, "base")),
		imagetest.Layer(t, imagetest.File("marker", 0o644, marker)))
}

func TestPull_OCILayout(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "my:layout") // a colon in the path itself
	src := testImage(t, "oci")
	imagetest.WriteLayout(t, dir, src)
	s := MustOpen(t)

	for _, ref := range []string{"oci:" + dir, "oci:" + dir + ":latest", "oci:" + dir + "@" + digestOf(t, src)} {
		t.Run(strings.TrimPrefix(ref, "oci:"+dir), func(t *testing.T) {
			img := MustPull(t, s, ref)
			if got := readFile(t, img.Rootfs, "marker"); got != "oci" {
				t.Errorf("marker = %q", got)
			}
			if img.Digest != digestOf(t, src) || img.Ref != ref {
				t.Errorf("got %+v", img)
			}
			if got, want := img.Config.Cmd, []string{"run", "oci"}; !slices.Equal(got, want) {
				t.Errorf("Cmd = %q", got)
			}
		})
	}
	t.Run("ErrNoTag", func(t *testing.T) {
		ref := "oci:" + dir + ":v9"
		_, err := s.Pull(context.Background(), ref, nil)
		wantPullFailed(t, err, ref, `no image tagged "v9"`)
	})
	t.Run("ErrMissing", func(t *testing.T) {
		ref := "oci:" + filepath.Join(t.TempDir(), "nope")
		_, err := s.Pull(context.Background(), ref, nil)
		wantPullFailed(t, err, ref, "")
	})
	t.Run("Ambiguous", func(t *testing.T) {
		two := t.TempDir()
		p, err := layout.Write(two, empty.Index)
		if err != nil {
			t.Fatal(err)
		}
		for _, tag := range []string{"a", "b"} {
			if err := p.AppendImage(testImage(t, tag), layout.WithAnnotations(map[string]string{
				"org.opencontainers.image.ref.name": tag})); err != nil {
				t.Fatal(err)
			}
		}
		_, err = s.Pull(context.Background(), "oci:"+two, nil)
		wantPullFailed(t, err, "oci:"+two, "holds 2 images")
		if got := readFile(t, MustPull(t, s, "oci:"+two+":b").Rootfs, "marker"); got != "b" {
			t.Errorf("marker = %q", got)
		}
	})
	t.Run("Index", func(t *testing.T) {
		idxDir := t.TempDir()
		mk := func(arch string) v1.Image {
			return imagetest.PlatformImage(t, v1.Platform{OS: "linux", Architecture: arch}, v1.Config{},
				imagetest.Layer(t, imagetest.File("arch", 0o644, arch)))
		}
		if _, err := layout.Write(idxDir, imagetest.Index(t, map[string]v1.Image{
			"linux/amd64": mk("amd64"), "linux/arm64": mk("arm64")})); err != nil {
			t.Fatal(err)
		}
		s := MustOpen(t, image.WithPlatform("linux/arm64"))
		if got := readFile(t, MustPull(t, s, "oci:"+idxDir).Rootfs, "arch"); got != "arm64" {
			t.Errorf("arch = %q, want arm64", got)
		}
	})
}

func TestPull_DockerArchive(t *testing.T) {
	path := filepath.Join(t.TempDir(), "image.tar")
	src := testImage(t, "archive")
	imagetest.WriteDockerArchive(t, path, "example.com/team/app:v1", src)
	s := MustOpen(t)
	var first string
	for _, ref := range []string{"docker-archive:" + path, "docker-archive:" + path + ":example.com/team/app:v1"} {
		img := MustPull(t, s, ref)
		if got := readFile(t, img.Rootfs, "marker"); got != "archive" {
			t.Errorf("marker = %q", got)
		}
		cfg, _ := src.ConfigName()
		if img.Digest != cfg.String() {
			t.Errorf("Digest = %s, want the config digest %s", img.Digest, cfg)
		}
		if first == "" {
			first = img.Rootfs
		} else if img.Rootfs != first {
			t.Errorf("rootfs %s, want the same %s", img.Rootfs, first)
		}
	}
	ref := "docker-archive:" + path + ":other:v2"
	_, err := s.Pull(context.Background(), ref, nil)
	wantPullFailed(t, err, ref, "")

	// The same layers from a registry and from a layout share the cache.
	dir := t.TempDir()
	imagetest.WriteLayout(t, dir, src)
	if img := MustPull(t, s, "oci:"+dir); img.Rootfs != first {
		t.Errorf("oci rootfs %s, want the shared %s", img.Rootfs, first)
	}
	if got := entries(t, filepath.Join(s.Dir(), "layers/sha256")); len(got) != 2 {
		t.Errorf("%d layers unpacked, want 2", len(got))
	}
}

func TestPull_Dir(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "hello"), []byte("hi"), 0o644)
	s := MustOpen(t)
	img := MustPull(t, s, "dir:"+dir)
	if img.Rootfs != dir || img.Digest != "" || img.Ref != "dir:"+dir {
		t.Errorf("got %+v", img)
	}
	if list, _ := s.List(context.Background()); len(list) != 0 {
		t.Errorf("List = %+v, dir images are not cached", list)
	}
	ref := "dir:" + filepath.Join(dir, "hello")
	_, err := s.Pull(context.Background(), ref, nil)
	wantPullFailed(t, err, ref, "not a directory")
}

func TestBuildBusyboxLayout(t *testing.T) {
	if _, err := os.Stat(imagetest.BusyboxPath); err != nil {
		testenv.Skip(t, "no static busybox")
	}
	dir := t.TempDir()
	ctx := context.Background()
	if err := image.BuildBusyboxLayout(ctx, imagetest.BusyboxPath, dir); err != nil {
		t.Fatal(err)
	}
	if err := image.BuildBusyboxLayout(ctx, imagetest.BusyboxPath, dir); err != nil { // again: replaces
		t.Fatal(err)
	}
	img := MustPull(t, MustOpen(t), "oci:"+dir+":latest")
	if !exists(img.Rootfs, "bin/busybox") || !exists(img.Rootfs, "bin/ls") {
		t.Errorf("rootfs lacks busybox: %q", entries(t, filepath.Join(img.Rootfs, "bin")))
	}
	if img.Digest != digestOf(t, imagetest.BusyboxImage(t)) {
		t.Errorf("digest %s differs from BusyboxImage's: builds are not reproducible", img.Digest)
	}
}
