package main

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/peterbourgon/ff/v3/ffcli"
)

func newBuildBusyboxCmd(cfg *rootConfig) *ffcli.Command {
	fs := cfg.newFlagSet("images build-busybox")
	busybox := fs.String("busybox", "/bin/busybox", "a static busybox binary (Debian: apt install busybox-static)")
	return &ffcli.Command{
		Name:       "build-busybox",
		ShortUsage: "boxrun images build-busybox [--busybox /bin/busybox] DIR",
		ShortHelp:  "write a tiny busybox image as an OCI layout in DIR (for machines without a registry); use it as oci:DIR",
		FlagSet:    fs,
		Options:    ffOptions(),
		Exec: func(ctx context.Context, args []string) error {
			pos, err := interspersed(fs, args)
			if err != nil {
				return err
			}
			if len(pos) != 1 {
				return usagef("build-busybox needs DIR")
			}
			dir, err := filepath.Abs(pos[0])
			if err != nil {
				return err
			}
			if err := buildBusyboxLayout(ctx, *busybox, dir); err != nil {
				return err
			}
			fmt.Fprintf(cfg.stdout, "Wrote oci:%s\n", dir)
			return nil
		},
	}
}

// buildBusyboxLayout writes an OCI image layout in dir holding one image
// (tag "latest"): the static busybox at /bin/busybox, a symlink per applet,
// /etc/passwd and /etc/group for root, and /root, /tmp.
func buildBusyboxLayout(ctx context.Context, busyboxPath, dir string) error {
	bin, err := os.ReadFile(busyboxPath)
	if err != nil {
		return fmt.Errorf("read busybox: %w", err)
	}
	out, err := exec.CommandContext(ctx, busyboxPath, "--list-full").Output()
	if err != nil {
		return fmt.Errorf("%s --list-full (is it busybox?): %w", busyboxPath, err)
	}
	applets := strings.Fields(string(out))
	sort.Strings(applets)

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Unix(0, 0)
	dirs := map[string]bool{}
	addDir := func(name string, mode int64) error {
		if dirs[name] {
			return nil
		}
		dirs[name] = true
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, ModTime: mtime})
	}
	addFile := func(name string, mode int64, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: mtime}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	for _, d := range []string{"bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "root", "var", "var/tmp"} {
		if err := addDir(d, 0o755); err != nil {
			return err
		}
	}
	if err := addDir("tmp", 0o1777); err != nil {
		return err
	}
	if err := addFile("bin/busybox", 0o755, bin); err != nil {
		return err
	}
	if err := addFile("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")); err != nil {
		return err
	}
	if err := addFile("etc/group", 0o644, []byte("root:x:0:\nnogroup:x:65534:\n")); err != nil {
		return err
	}
	for _, a := range applets {
		a = strings.TrimPrefix(a, "/")
		if a == "bin/busybox" || a == "" {
			continue
		}
		if err := addDir(filepath.Dir(a), 0o755); err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: a, Linkname: "/bin/busybox", Mode: 0o777, ModTime: mtime}); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	data := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		return fmt.Errorf("busybox layer: %w", err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = "amd64", "linux"
	cf.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	cf.Config.Cmd = []string{"/bin/sh"}
	cf.Config.WorkingDir = "/root"
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("write layout: %w", err)
	}
	return p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "latest"}))
}
