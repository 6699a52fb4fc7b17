// Package kubeimage turns a root filesystem directory into a single-layer
// image archive (docker-archive format) that containerd imports with
// `ctr -n k8s.io images import`. The test cluster has no registry: its pause
// image, the busybox test image and the BoxRun helper image are built with
// it from local files (scripts/k8s-up.sh, driver/kubernetes tests).
package kubeimage

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// File is an extra file put into the layer on top of the directory.
type File struct {
	Path string // absolute path in the image
	Mode fs.FileMode
	Body []byte
	// Link, when set, makes the entry a symlink to Link (Body is unused).
	Link string
}

// Spec describes an image to build.
type Spec struct {
	Ref        string   // e.g. "docker.io/library/busybox-test:latest"
	Rootfs     string   // directory copied into the layer ("" for none)
	Files      []File   // added after Rootfs
	Entrypoint []string // image config
	Cmd        []string
	Env        []string
	WorkingDir string
}

// Write writes the image spec describes to w as a docker-archive. Entries
// keep the owner, mode and link targets of the files in Rootfs; times are
// fixed so the same input gives the same layer digest.
func Write(w io.Writer, spec Spec) error {
	ref, err := name.ParseReference(spec.Ref)
	if err != nil {
		return fmt.Errorf("kubeimage: %w", err)
	}
	var layerBuf bytes.Buffer
	if err := writeLayer(&layerBuf, spec); err != nil {
		return fmt.Errorf("kubeimage: layer: %w", err)
	}
	data := layerBuf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	})
	if err != nil {
		return fmt.Errorf("kubeimage: %w", err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return fmt.Errorf("kubeimage: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("kubeimage: %w", err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Entrypoint = spec.Entrypoint
	cf.Config.Cmd = spec.Cmd
	cf.Config.Env = spec.Env
	cf.Config.WorkingDir = spec.WorkingDir
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return fmt.Errorf("kubeimage: %w", err)
	}
	if err := tarball.Write(ref, img, w); err != nil {
		return fmt.Errorf("kubeimage: write: %w", err)
	}
	return nil
}

var epoch = time.Unix(1700000000, 0)

func writeLayer(w io.Writer, spec Spec) error {
	tw := tar.NewWriter(w)
	if spec.Rootfs != "" {
		var paths []string
		err := filepath.WalkDir(spec.Rootfs, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if p != spec.Rootfs {
				paths = append(paths, p)
			}
			return nil
		})
		if err != nil {
			return err
		}
		sort.Strings(paths)
		for _, p := range paths {
			if err := addPath(tw, spec.Rootfs, p); err != nil {
				return err
			}
		}
	}
	for _, f := range spec.Files {
		h := &tar.Header{Name: filepath.Clean(f.Path)[1:], Mode: int64(f.Mode.Perm()), ModTime: epoch}
		if f.Link != "" {
			h.Typeflag, h.Linkname = tar.TypeSymlink, f.Link
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.Body))
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := tw.Write(f.Body); f.Link == "" && err != nil {
			return err
		}
	}
	return tw.Close()
}

func addPath(tw *tar.Writer, root, p string) error {
	fi, err := os.Lstat(p)
	if err != nil {
		return err
	}
	link := ""
	if fi.Mode()&fs.ModeSymlink != 0 {
		if link, err = os.Readlink(p); err != nil {
			return err
		}
	}
	h, err := tar.FileInfoHeader(fi, link)
	if err != nil {
		return err
	}
	rel, err := filepath.Rel(root, p)
	if err != nil {
		return err
	}
	h.Name = filepath.ToSlash(rel)
	if fi.IsDir() {
		h.Name += "/"
	}
	h.ModTime, h.AccessTime, h.ChangeTime = epoch, time.Time{}, time.Time{}
	h.Uname, h.Gname = "", ""
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		h.Uid, h.Gid = int(st.Uid), int(st.Gid)
	}
	if err := tw.WriteHeader(h); err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return nil
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(tw, f)
	return err
}
