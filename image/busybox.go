package image

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"runtime"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// buildTime is the timestamp of everything BusyboxImage makes, so that the
// same busybox binary always gives the same image digest.
func buildTime() time.Time { return time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC) }

// DefaultPath is the PATH in the config of the images built here.
const DefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// BusyboxImage builds, in memory, a single-layer image around a static
// busybox binary (Debian's busybox-static is /bin/busybox): /bin/busybox,
// a symlink for each applet it lists, /etc/passwd and /etc/group with root
// and nobody, /root, /tmp and empty /dev, /proc and /sys. Its config sets
// PATH and Cmd ["sh"]. The same binary always gives the same digest.
// busyboxPath is run once (busybox --list-full) to learn the applets.
func BusyboxImage(ctx context.Context, busyboxPath string) (v1.Image, error) {
	bin, err := os.ReadFile(busyboxPath)
	if err != nil {
		return nil, fmt.Errorf("busybox image: %w", err)
	}
	out, err := exec.CommandContext(ctx, busyboxPath, "--list-full").Output()
	if err != nil {
		return nil, fmt.Errorf("busybox image: %s --list-full: %w", busyboxPath, err)
	}
	var applets []string
	for _, l := range strings.Split(string(out), "\n") {
		if l = strings.TrimSpace(l); l != "" && l != "bin/busybox" {
			applets = append(applets, l)
		}
	}
	sort.Strings(applets)

	var files []tarEntry
	dirs := map[string]bool{}
	addDir := func(d string, mode int64) {
		for _, p := range parents(d) {
			if !dirs[p] {
				dirs[p] = true
				files = append(files, tarEntry{name: p + "/", mode: 0o755, typ: tar.TypeDir})
			}
		}
		if !dirs[d] {
			dirs[d] = true
			files = append(files, tarEntry{name: d + "/", mode: mode, typ: tar.TypeDir})
		}
	}
	for _, d := range []string{"bin", "dev", "etc", "proc", "sbin", "sys", "usr/bin", "usr/sbin", "var"} {
		addDir(d, 0o755)
	}
	addDir("root", 0o700)
	addDir("tmp", 0o1777)
	files = append(files,
		tarEntry{name: "bin/busybox", mode: 0o755, typ: tar.TypeReg, body: bin},
		tarEntry{name: "etc/passwd", mode: 0o644, typ: tar.TypeReg, body: []byte(
			"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")},
		tarEntry{name: "etc/group", mode: 0o644, typ: tar.TypeReg, body: []byte("root:x:0:\nnogroup:x:65534:\n")},
	)
	for _, a := range applets {
		addDir(path.Dir(a), 0o755)
		files = append(files, tarEntry{name: a, mode: 0o777, typ: tar.TypeSymlink, link: "/bin/busybox"})
	}
	layer, err := tarLayer(files)
	if err != nil {
		return nil, fmt.Errorf("busybox image: %w", err)
	}
	return newImage(v1.Config{Env: []string{DefaultPath}, Cmd: []string{"sh"}}, layer)
}

// BuildBusyboxLayout writes BusyboxImage(busyboxPath) as the only image of
// an OCI layout in layoutDir (created if needed; an index already there is
// replaced), tagged "latest". Pull it as "oci:" + layoutDir: no registry
// needed.
func BuildBusyboxLayout(ctx context.Context, busyboxPath, layoutDir string) error {
	img, err := BusyboxImage(ctx, busyboxPath)
	if err != nil {
		return err
	}
	p, err := layout.Write(layoutDir, empty.Index)
	if err != nil {
		return fmt.Errorf("busybox layout: %w", err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{refNameAnnotation: "latest"})); err != nil {
		return fmt.Errorf("busybox layout: %w", err)
	}
	return nil
}

func parents(p string) []string {
	var out []string
	for d := path.Dir(p); d != "." && d != "/"; d = path.Dir(d) {
		out = append([]string{d}, out...)
	}
	return out
}

// tarEntry is one entry of a layer built in memory.
type tarEntry struct {
	name string
	mode int64
	typ  byte
	body []byte
	link string
}

func tarLayer(entries []tarEntry) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Mode: e.mode, Typeflag: e.typ, Linkname: e.link,
			Size: int64(len(e.body)), ModTime: buildTime(), Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}, tarball.WithCompressedCaching)
}

// newImage makes a linux image for the host architecture from cfg and layers.
func newImage(cfg v1.Config, layers ...v1.Layer) (v1.Image, error) {
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{
		OS:           "linux",
		Architecture: runtime.GOARCH,
		Created:      v1.Time{Time: buildTime()},
		Config:       cfg,
		RootFS:       v1.RootFS{Type: "layers"},
	})
	if err != nil {
		return nil, err
	}
	img, err = mutate.Append(img, addenda(layers)...)
	if err != nil {
		return nil, err
	}
	return img, nil
}

func addenda(layers []v1.Layer) []mutate.Addendum {
	out := make([]mutate.Addendum, len(layers))
	for i, l := range layers {
		out[i] = mutate.Addendum{Layer: l, History: v1.History{Created: v1.Time{Time: buildTime()}, CreatedBy: "boxrun"}}
	}
	return out
}
