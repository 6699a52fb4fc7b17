// Package imagetest builds OCI images in tests and serves them from an
// in-process registry, so image code runs against the real registry
// protocol without a network: go-containerregistry's pkg/registry on an
// httptest server.
//
// Typical use:
//
//	host := imagetest.Registry(t)
//	ref := imagetest.Push(t, host, "busybox:latest", imagetest.BusyboxImage(t))
//	img, err := store.Pull(ctx, ref, nil)
package imagetest

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/boxrun/boxrun/image"
	"github.com/boxrun/boxrun/internal/testenv"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
)

// BusyboxPath is where Debian's busybox-static installs busybox.
const BusyboxPath = "/bin/busybox"

// BusyboxImage returns image.BusyboxImage of /bin/busybox: a shell and the
// usual tools, Cmd ["sh"]. It skips the test if /bin/busybox is missing.
func BusyboxImage(tb testing.TB) v1.Image {
	tb.Helper()
	if _, err := os.Stat(BusyboxPath); err != nil {
		testenv.Skip(tb, fmt.Sprintf("no %s (install busybox-static): %v", BusyboxPath, err))
	}
	img, err := image.BusyboxImage(context.Background(), BusyboxPath)
	if err != nil {
		tb.Fatal(err)
	}
	return img
}

// StaticBinaryImage returns a scratch image holding only the static binary
// at path, as /<base name>, which is also its Entrypoint.
func StaticBinaryImage(tb testing.TB, path string) v1.Image {
	tb.Helper()
	body, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	base := filepath.Base(path)
	return Image(tb, v1.Config{Entrypoint: []string{"/" + base}},
		Layer(tb, File(base, 0o755, string(body))))
}

// Entry is one entry of a layer built by Layer.
type Entry struct {
	Name     string
	Type     byte // tar.TypeReg, TypeDir, TypeSymlink, TypeLink, …
	Mode     int64
	Body     string // regular files
	Linkname string // symlinks and hard links
	UID, GID int
	// Xattrs become SCHILY.xattr. PAX records (key without the prefix).
	Xattrs map[string]string
	// Devmajor, Devminor: character and block devices.
	Devmajor, Devminor int64
}

// File is a regular file entry.
func File(name string, mode int64, body string) Entry {
	return Entry{Name: name, Type: tar.TypeReg, Mode: mode, Body: body}
}

// Dir is a directory entry.
func Dir(name string, mode int64) Entry {
	return Entry{Name: name, Type: tar.TypeDir, Mode: mode}
}

// Symlink is a symbolic link entry.
func Symlink(name, target string) Entry {
	return Entry{Name: name, Type: tar.TypeSymlink, Mode: 0o777, Linkname: target}
}

// Hardlink is a hard link entry.
func Hardlink(name, target string) Entry {
	return Entry{Name: name, Type: tar.TypeLink, Mode: 0o644, Linkname: target}
}

// Whiteout deletes name (a path) of the layers below.
func Whiteout(name string) Entry {
	dir, base := filepath.Split(name)
	return File(dir+".wh."+base, 0o644, "")
}

// Opaque hides everything the layers below have in dir.
func Opaque(dir string) Entry {
	return File(filepath.Join(dir, ".wh..wh..opq"), 0o644, "")
}

// Tar returns the tar stream of entries, exactly in their order (no
// cleaning: tests can build malicious layers).
func Tar(tb testing.TB, entries ...Entry) []byte {
	tb.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.Name, Typeflag: e.Type, Mode: e.Mode, Linkname: e.Linkname,
			Uid: e.UID, Gid: e.GID, ModTime: mtime, Format: tar.FormatPAX,
			Devmajor: e.Devmajor, Devminor: e.Devminor}
		for k, v := range e.Xattrs {
			if hdr.PAXRecords == nil {
				hdr.PAXRecords = map[string]string{}
			}
			hdr.PAXRecords["SCHILY.xattr."+k] = v
		}
		if e.Type == tar.TypeReg {
			hdr.Size = int64(len(e.Body))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			tb.Fatal(err)
		}
		if _, err := io.WriteString(tw, e.Body); err != nil {
			tb.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// Layer returns a gzip-compressed layer of entries.
func Layer(tb testing.TB, entries ...Entry) v1.Layer {
	tb.Helper()
	return LayerFromTar(tb, Tar(tb, entries...))
}

// LayerFromTar returns a gzip-compressed layer of the tar stream b.
func LayerFromTar(tb testing.TB, b []byte) v1.Layer {
	tb.Helper()
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
	if _, err := zw.Write(b); err != nil {
		tb.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	z := gz.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(z)), nil
	}, tarball.WithMediaType(types.DockerLayer))
	if err != nil {
		tb.Fatal(err)
	}
	return l
}

// RandomLayer returns a layer holding one file of size bytes of
// incompressible content (seeded, so reproducible), stored compressed.
func RandomLayer(tb testing.TB, name string, size int64, seed uint64) v1.Layer {
	tb.Helper()
	body := make([]byte, size)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), byte(seed >> 24)})
	r.Read(body)
	return Layer(tb, Entry{Name: name, Type: tar.TypeReg, Mode: 0o644, Body: string(body)})
}

// Image returns a linux image for the host architecture (Created
// 2024-01-01) with config cfg and layers, lowest first.
func Image(tb testing.TB, cfg v1.Config, layers ...v1.Layer) v1.Image {
	tb.Helper()
	return PlatformImage(tb, v1.Platform{OS: "linux", Architecture: runtime.GOARCH}, cfg, layers...)
}

// PlatformImage is Image for another platform.
func PlatformImage(tb testing.TB, p v1.Platform, cfg v1.Config, layers ...v1.Layer) v1.Image {
	tb.Helper()
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{
		OS: p.OS, Architecture: p.Architecture, Variant: p.Variant,
		Created: v1.Time{Time: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)},
		Config:  cfg,
		RootFS:  v1.RootFS{Type: "layers"},
	})
	if err != nil {
		tb.Fatal(err)
	}
	if img, err = mutate.AppendLayers(img, layers...); err != nil {
		tb.Fatal(err)
	}
	return img
}

// Index returns a multi-arch index of images, each with its platform
// ("linux/amd64", "linux/arm64/v8", …) in the index.
func Index(tb testing.TB, images map[string]v1.Image) v1.ImageIndex {
	tb.Helper()
	var adds []mutate.IndexAddendum
	for p, img := range images {
		plat, err := v1.ParsePlatform(p)
		if err != nil {
			tb.Fatal(err)
		}
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: plat}})
	}
	return mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...)
}

// WriteLayout writes img into the OCI layout dir (created if needed) as
// its only image, tagged "latest" (so "oci:"+dir and "oci:"+dir+":latest"
// both name it).
func WriteLayout(tb testing.TB, dir string, img v1.Image) {
	tb.Helper()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		tb.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": "latest",
	})); err != nil {
		tb.Fatal(err)
	}
}

// WriteDockerArchive writes img as a `docker save` tarball at path, tagged
// ref (for example "busybox:latest").
func WriteDockerArchive(tb testing.TB, path, ref string, img v1.Image) {
	tb.Helper()
	tag, err := name.NewTag(ref)
	if err != nil {
		tb.Fatal(err)
	}
	if err := tarball.WriteToFile(path, tag, img); err != nil {
		tb.Fatal(err)
	}
}
