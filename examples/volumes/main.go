// Command volumes mounts host directories into a box: a read-write one the
// box writes results to, and a read-only one holding inputs.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/examples/internal/exampleutil"
)

func main() { exampleutil.Main(run) }

func run(ctx context.Context, svc boxrun.Service, stdout io.Writer) error {
	host, err := os.MkdirTemp("", "boxrun-volumes-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(host)
	inputs, results := filepath.Join(host, "inputs"), filepath.Join(host, "results")
	for _, d := range []string{inputs, results} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	// Box root is not host root: in a read-write volume it acts as the
	// directory's owner, and a server running as root (gVisor) refuses a
	// read-write volume of host root's. Run as root, give the results
	// directory to an ordinary user (nobody here); run as a user, it is
	// yours already.
	if os.Geteuid() == 0 {
		if err := os.Chown(results, 65534, 65534); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(inputs, "words.txt"), []byte("box\nrun\nvolume\n"), 0o644); err != nil {
		return err
	}

	spec := exampleutil.SmallBox()
	spec.Volumes = []boxrun.Volume{
		{HostPath: inputs, GuestPath: "/root/inputs", Readonly: true},
		{HostPath: results, GuestPath: "/root/results"},
	}
	box, err := svc.Create(ctx, spec)
	if err != nil {
		return err
	}
	defer svc.Remove(context.WithoutCancel(ctx), box.ID, true)
	for _, v := range box.Volumes {
		fmt.Fprintf(stdout, "mounted %s (readonly %v)\n", v.GuestPath, v.Readonly)
	}

	// The box reads the inputs and writes into the shared results directory.
	e, err := svc.Exec(ctx, box.ID, boxrun.ExecRequest{
		Cmd: []string{"sh", "-c", "wc -l < inputs/words.txt > results/count.txt"},
	}, nil, os.Stderr)
	if err != nil {
		return err
	}
	if *e.ExitCode != 0 {
		return fmt.Errorf("exec failed: exit %d", *e.ExitCode)
	}
	// The host sees the result at once, without any copy.
	b, err := os.ReadFile(filepath.Join(results, "count.txt"))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "host reads results/count.txt: %s\n", strings.TrimSpace(string(b)))
	return nil
}
