package image_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	boxrun "github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/image"
	"github.com/boxrun/boxrun/image/imagetest"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// offline opens a Store that may reach no registry: docker.io goes only to
// a mirror failing every request, and any other host is refused. hits
// counts requests to the mirror; net records refused hosts.
func offline(t *testing.T) (s *image.Store, hits func() int, net *loopbackOnly) {
	fail, hits := failing(t)
	net = &loopbackOnly{}
	s = MustOpen(t, image.WithTransport(net), image.WithPullPolicy(image.PullAlways),
		image.WithRegistryMirrors("docker.io", false, "http://"+fail))
	return s, hits, net
}

func assertNothingContacted(t *testing.T, hits func() int, net *loopbackOnly) {
	t.Helper()
	if n := hits(); n != 0 {
		t.Errorf("the registry got %d requests", n)
	}
	if h := net.hosts(); len(h) != 0 {
		t.Errorf("hosts contacted: %q", h)
	}
}

func dockerArchive(t *testing.T, ref string, img v1.Image) []byte {
	t.Helper()
	p := filepath.Join(t.TempDir(), "image.tar")
	imagetest.WriteDockerArchive(t, p, ref, img)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func configName(t *testing.T, img v1.Image) string {
	t.Helper()
	h, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	return h.String()
}

func TestLoad_DockerArchive(t *testing.T) {
	s, hits, net := offline(t)
	ctx := context.Background()
	bb := imagetest.BusyboxImage(t)
	arc := dockerArchive(t, "python:3.12-slim", bb)

	var mu sync.Mutex
	var last boxrun.PullProgress
	infos, err := s.Load(ctx, bytes.NewReader(arc), image.LoadOptions{Tags: []string{"corp.example/tools/py:1"}, Size: int64(len(arc))},
		func(p boxrun.PullProgress) {
			if p.Layer == image.ArchiveLayer {
				mu.Lock()
				last = p
				mu.Unlock()
			}
		})
	if err != nil {
		t.Fatal(err)
	}
	if last.Done != int64(len(arc)) || last.Total != int64(len(arc)) {
		t.Errorf("archive progress ended at %d/%d, want %d", last.Done, last.Total, len(arc))
	}
	want := configName(t, bb)
	if len(infos) != 2 || infos[0].Ref != "python:3.12-slim" || infos[1].Ref != "corp.example/tools/py:1" {
		t.Fatalf("Load = %+v, want python:3.12-slim and corp.example/tools/py:1", infos)
	}
	for _, ref := range []string{"python:3.12-slim", "docker.io/library/python:3.12-slim", "corp.example/tools/py:1"} {
		img, err := s.Pull(ctx, ref, nil)
		if err != nil {
			t.Fatalf("Pull(%q) of a loaded name: %v", ref, err)
		}
		if img.Digest != want || img.Endpoint != "" {
			t.Errorf("Pull(%q) = %s from %q, want %s from the cache", ref, img.Digest, img.Endpoint, want)
		}
		if img.Remote != "" {
			t.Errorf("Pull(%q) of a loaded name: Remote %q, want none (no registry gave it)", ref, img.Remote)
		}
		if !exists(img.Rootfs, "bin/busybox") {
			t.Errorf("%s: no bin/busybox in the rootfs", ref)
		}
	}
	assertNothingContacted(t, hits, net)

	// An explicit PullAlways asks the registry (here: failing, so the
	// cached image is used... only when the registry is unreachable; a
	// failing answer fails the pull).
	if _, err := s.PullWith(ctx, "python:3.12-slim", image.PullOptions{Policy: image.PullAlways}, nil); err == nil && hits() == 0 {
		t.Error("PullAlways did not ask the registry")
	}
}

func TestLoad_Gzip(t *testing.T) {
	s, hits, net := offline(t)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(dockerArchive(t, "alpine:3.20", imagetest.BusyboxImage(t)))
	zw.Close()
	if _, err := s.Load(context.Background(), &gz, image.LoadOptions{}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PullWith(context.Background(), "alpine:3.20", image.PullOptions{Policy: image.PullNever}, nil); err != nil {
		t.Fatal(err)
	}
	assertNothingContacted(t, hits, net)
}

// tarDir packs dir into a tar.
func tarDir(t *testing.T, dir string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		h, err := tar.FileInfoHeader(fi, "")
		if err != nil {
			return err
		}
		h.Name = filepath.ToSlash(rel)
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			tw.Write(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	tw.Close()
	return buf.Bytes()
}

func TestLoad_OCILayout(t *testing.T) {
	s, hits, net := offline(t)
	ctx := context.Background()
	bb := imagetest.BusyboxImage(t)
	dir := t.TempDir()
	imagetest.WriteLayout(t, dir, bb) // named only "latest": no name of its own
	arc := tarDir(t, dir)

	_, err := s.Load(ctx, bytes.NewReader(arc), image.LoadOptions{}, nil)
	if !errors.Is(err, boxrun.ErrInvalid) || !strings.Contains(err.Error(), "no name") {
		t.Fatalf("Load of an unnamed image = %v, want VALIDATION_ERROR asking for a name", err)
	}
	infos, err := s.Load(ctx, bytes.NewReader(arc), image.LoadOptions{Tags: []string{"python"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 || infos[0].Ref != "python" || infos[0].Digest != digestOf(t, bb) {
		t.Fatalf("Load = %+v, want python with the manifest digest %s", infos, digestOf(t, bb))
	}

	// Names from the layout's own annotations.
	dir2 := t.TempDir()
	p, err := layout.Write(dir2, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(bb, layout.WithAnnotations(map[string]string{
		"io.containerd.image.name":          "docker.io/library/node:22",
		"org.opencontainers.image.ref.name": "22",
	})); err != nil {
		t.Fatal(err)
	}
	infos, err = s.Load(ctx, bytes.NewReader(tarDir(t, dir2)), image.LoadOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 || infos[0].Ref != "docker.io/library/node:22" {
		t.Fatalf("Load = %+v, want docker.io/library/node:22", infos)
	}
	for _, ref := range []string{"python", "node:22"} {
		if _, err := s.Pull(ctx, ref, nil); err != nil {
			t.Errorf("Pull(%q): %v", ref, err)
		}
	}
	assertNothingContacted(t, hits, net)
}

func TestTagSaveLoad_RoundTrip(t *testing.T) {
	ctx := context.Background()
	s, hits, net := offline(t)
	// One image loaded from an archive, one pulled from a registry
	// (compressed blobs): both save and load back as the same image ID.
	bb := imagetest.BusyboxImage(t)
	if _, err := s.Load(ctx, bytes.NewReader(dockerArchive(t, "python:3.12", bb)), image.LoadOptions{}, nil); err != nil {
		t.Fatal(err)
	}
	reg := imagetest.Registry(t)
	other := imagetest.Image(t, v1.Config{Cmd: []string{"/hello"}}, imagetest.Layer(t, imagetest.File("hello", 0o755, "hi")))
	ref := imagetest.Push(t, reg, "team/hello:2", other)
	MustPull(t, s, ref)

	if _, err := s.Tag(ctx, "python:3.12", "mine:1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Tag(ctx, ref, "corp.example/hello"); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := s.Save(ctx, &buf, []string{"mine:1", "python:3.12", "corp.example/hello"}); err != nil {
		t.Fatal(err)
	}
	assertNothingContacted(t, hits, net)

	// go-containerregistry reads it as `docker load` would.
	m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil })
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 2 || strings.Join(m[0].RepoTags, ",") != "mine:1,python:3.12" || strings.Join(m[1].RepoTags, ",") != "corp.example/hello:latest" {
		t.Errorf("manifest.json = %+v", m)
	}

	s2, hits2, net2 := offline(t)
	infos, err := s2.Load(ctx, &buf, image.LoadOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, i := range infos {
		got[i.Ref] = i.Digest
	}
	if got["mine:1"] != configName(t, bb) || got["python:3.12"] != configName(t, bb) || got["corp.example/hello:latest"] != configName(t, other) {
		t.Errorf("loaded back %v, want the image IDs %s and %s", got, configName(t, bb), configName(t, other))
	}
	img, err := s2.PullWith(ctx, "corp.example/hello", image.PullOptions{Policy: image.PullNever}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if readFile(t, img.Rootfs, "hello") != "hi" {
		t.Error("hello lost its content")
	}
	assertNothingContacted(t, hits2, net2)
}

func TestTag_Bad(t *testing.T) {
	s, _, _ := offline(t)
	ctx := context.Background()
	if _, err := s.Tag(ctx, "nosuch:1", "x:1"); !errors.Is(err, boxrun.ErrNotFound) {
		t.Errorf("Tag of an unknown image = %v, want ErrNotFound", err)
	}
	if _, err := s.Load(ctx, bytes.NewReader(dockerArchive(t, "a:1", imagetest.BusyboxImage(t))), image.LoadOptions{}, nil); err != nil {
		t.Fatal(err)
	}
	for _, dst := range []string{"", "UPPER:1", "x@sha256:" + strings.Repeat("0", 64), "oci:/tmp/x", "/abs/path"} {
		if _, err := s.Tag(ctx, "a:1", dst); !errors.Is(err, boxrun.ErrInvalid) {
			t.Errorf("Tag(a:1, %q) = %v, want VALIDATION_ERROR", dst, err)
		}
	}
}

func TestSave_UnknownWritesNothing(t *testing.T) {
	s, _, _ := offline(t)
	ctx := context.Background()
	if _, err := s.Load(ctx, bytes.NewReader(dockerArchive(t, "a:1", imagetest.BusyboxImage(t))), image.LoadOptions{}, nil); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	err := s.Save(ctx, &buf, []string{"a:1", "nosuch:2"})
	if !errors.Is(err, boxrun.ErrNotFound) || !strings.Contains(err.Error(), "nosuch:2") {
		t.Errorf("Save with an unknown tag = %v, want ErrNotFound naming it", err)
	}
	if buf.Len() != 0 {
		t.Errorf("Save wrote %d bytes before failing", buf.Len())
	}
	if err := s.Save(ctx, &buf, nil); !errors.Is(err, boxrun.ErrInvalid) {
		t.Errorf("Save of nothing = %v, want VALIDATION_ERROR", err)
	}
}

type tarEntry struct {
	name, link string
	typ        byte
	body       string
}

func rawTar(t *testing.T, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: 0o644, Size: int64(len(e.body))}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	return buf.Bytes()
}

func TestLoad_BadArchives(t *testing.T) {
	good := dockerArchive(t, "a:1", imagetest.BusyboxImage(t))
	manifest := `[{"Config":"c.json","RepoTags":["a:1"],"Layers":["l.tar"]}]`
	for _, tc := range []struct {
		name string
		arc  []byte
		want string
	}{
		{"garbage", []byte(strings.Repeat("not a tar at all ", 100)), "corrupt archive"},
		{"empty", nil, "empty archive"},
		{"truncated", good[:len(good)/2], "corrupt archive"},
		{"not an image", rawTar(t, tarEntry{name: "hello.txt", typ: tar.TypeReg, body: "hi"}), "neither"},
		{"dotdot", rawTar(t, tarEntry{name: "../../evil", typ: tar.TypeReg, body: "x"}, tarEntry{name: "manifest.json", typ: tar.TypeReg, body: manifest}), "escapes"},
		{"inner dotdot", rawTar(t, tarEntry{name: "blobs/../../evil", typ: tar.TypeReg, body: "x"}), "escapes"},
		{"absolute", rawTar(t, tarEntry{name: "/tmp/evil", typ: tar.TypeReg, body: "x"}), "absolute"},
		{"symlink out", rawTar(t, tarEntry{name: "l.tar", typ: tar.TypeSymlink, link: "../../../etc/shadow"}, tarEntry{name: "manifest.json", typ: tar.TypeReg, body: manifest}), "outside"},
		{"absolute symlink", rawTar(t, tarEntry{name: "l.tar", typ: tar.TypeSymlink, link: "/etc/shadow"}), "outside"},
		{"hard link", rawTar(t, tarEntry{name: "l.tar", typ: tar.TypeLink, link: "/etc/shadow"}), "type"},
		{"device", rawTar(t, tarEntry{name: "dev", typ: tar.TypeChar}), "type"},
		{"manifest lies", rawTar(t, tarEntry{name: "manifest.json", typ: tar.TypeReg, body: manifest}), "Failed to load"},
		{"bad name", dockerArchive(t, "a:1", imagetest.BusyboxImage(t)), "Invalid image name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, hits, net := offline(t)
			opts := image.LoadOptions{}
			if tc.name == "bad name" {
				opts.Tags = []string{"Bad Name!"}
			}
			_, err := s.Load(context.Background(), bytes.NewReader(tc.arc), opts, nil)
			if !errors.Is(err, boxrun.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load = %v, want VALIDATION_ERROR mentioning %q", err, tc.want)
			}
			t.Log(err)
			assertEmptyStore(t, s)
			assertNothingContacted(t, hits, net)
		})
	}
	// The corrupt layer of an otherwise good archive: its digest fails.
	t.Run("corrupt layer", func(t *testing.T) {
		s, _, _ := offline(t)
		bad := corruptLargest(t, good)
		_, err := s.Load(context.Background(), bytes.NewReader(bad), image.LoadOptions{}, nil)
		if !errors.Is(err, boxrun.ErrInvalid) {
			t.Fatalf("Load = %v, want VALIDATION_ERROR", err)
		}
		t.Log(err)
		assertEmptyStore(t, s)
	})
}

// assertEmptyStore checks that a failed load left no name, no rootfs and
// no work file behind.
func assertEmptyStore(t *testing.T, s *image.Store) {
	t.Helper()
	if list, err := s.List(context.Background()); err != nil || len(list) != 0 {
		t.Errorf("List = %v, %v; want nothing", list, err)
	}
	for _, d := range []string{"rootfs/sha256", "tmp"} {
		err := filepath.Walk(filepath.Join(s.Dir(), d), func(p string, fi os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			if d == "tmp" && (fi.IsDir() && filepath.Dir(filepath.Dir(p)) == s.Dir() || strings.HasSuffix(p, ".lock")) {
				return nil // tmp/ itself, the store's own work dir and its lock
			}
			if p != filepath.Join(s.Dir(), d) {
				t.Errorf("left behind: %s", p)
			}
			return nil
		})
		if err != nil {
			t.Error(err)
		}
	}
}

// corruptLargest returns the tar archive arc with one byte in the middle of
// its largest file (a layer blob) flipped: the same names and sizes, so
// only the layer's digest check can notice.
func corruptLargest(t *testing.T, arc []byte) []byte {
	t.Helper()
	type entry struct {
		hdr  *tar.Header
		body []byte
	}
	var ents []entry
	largest := -1
	tr := tar.NewReader(bytes.NewReader(arc))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Typeflag == tar.TypeReg && (largest < 0 || len(body) > len(ents[largest].body)) {
			largest = len(ents)
		}
		ents = append(ents, entry{hdr, body})
	}
	if largest < 0 || len(ents[largest].body) == 0 {
		t.Fatal("no file to corrupt in the archive")
	}
	ents[largest].body[len(ents[largest].body)/2] ^= 0xff
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	for _, e := range ents {
		if err := tw.WriteHeader(e.hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}
