// Command mkimage writes a single-layer image archive for the test cluster
// (see package kubeimage); scripts/k8s-up.sh runs it with `go run`.
//
//	mkimage -ref REF -o FILE [-rootfs DIR] [-busybox] [-file SRC:DST]...
//	        [-env K=V]... [-entrypoint JSON]
//
// -busybox lays out the rootfs of boxruntest.BusyboxImage (busybox and its
// applets, the test users) in a temporary directory and uses it as -rootfs.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/boxrun/boxrun/boxruntest"
	"github.com/boxrun/boxrun/driver/kubernetes/internal/kubeimage"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(s string) error { *l = append(*l, s); return nil }

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

func run() error {
	var spec kubeimage.Spec
	var out, entrypoint string
	var busybox bool
	var files, env list
	flag.StringVar(&spec.Ref, "ref", "", "image reference")
	flag.StringVar(&out, "o", "", "output archive")
	flag.StringVar(&spec.Rootfs, "rootfs", "", "rootfs directory")
	flag.BoolVar(&busybox, "busybox", false, "use boxruntest's busybox rootfs")
	flag.StringVar(&entrypoint, "entrypoint", "", "entrypoint as a JSON array")
	flag.Var(&files, "file", "SRC:DST file to add (mode kept)")
	flag.Var(&env, "env", "K=V")
	flag.Parse()
	if spec.Ref == "" || out == "" {
		return fmt.Errorf("-ref and -o are required")
	}
	if busybox {
		dir, err := boxruntest.BusyboxRootfs(os.TempDir())
		if err != nil {
			return err
		}
		spec.Rootfs = dir
	}
	if entrypoint != "" {
		if err := json.Unmarshal([]byte(entrypoint), &spec.Entrypoint); err != nil {
			return fmt.Errorf("-entrypoint: %w", err)
		}
	}
	spec.Env = env
	for _, f := range files {
		src, dst, ok := strings.Cut(f, ":")
		if !ok {
			return fmt.Errorf("-file %q: want SRC:DST", f)
		}
		body, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		fi, err := os.Stat(src)
		if err != nil {
			return err
		}
		spec.Files = append(spec.Files, kubeimage.File{Path: dst, Mode: fi.Mode(), Body: body})
	}
	f, err := os.Create(out + ".tmp")
	if err != nil {
		return err
	}
	if err := kubeimage.Write(f, spec); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(out+".tmp", out)
}
