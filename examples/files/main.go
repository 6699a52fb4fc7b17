// Command files moves data in and out of a box: single files with
// UploadFile/DownloadFile (streamed, any size), whole directories as tar
// streams with CopyIn/CopyOut.
package main

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/examples/internal/exampleutil"
)

func main() { exampleutil.Main(run) }

func run(ctx context.Context, svc boxrun.Service, stdout io.Writer) error {
	box, err := svc.Create(ctx, exampleutil.SmallBox())
	if err != nil {
		return err
	}
	defer svc.Remove(context.WithoutCancel(ctx), box.ID, true)

	// A file in (parent directories are created).
	csv := "name,score\nada,3\nbob,5\ncy,4\n"
	if err := svc.UploadFile(ctx, box.ID, "/root/data/scores.csv", strings.NewReader(csv)); err != nil {
		return err
	}
	// Work on it inside the box (relative paths: the workdir is /root).
	var out strings.Builder
	cmd := `tail -n +2 data/scores.csv | sort -t, -k2 -n -r > data/ranked.csv && head -n 1 data/ranked.csv`
	if _, err := svc.Exec(ctx, box.ID, boxrun.ExecRequest{Cmd: []string{"sh", "-c", cmd}}, &out, nil); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "best: %s", out.String())

	// A file out.
	var ranked bytes.Buffer
	if err := svc.DownloadFile(ctx, box.ID, "/root/data/ranked.csv", &ranked); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "downloaded ranked.csv: %d lines\n", strings.Count(ranked.String(), "\n"))

	// A directory in, as a tar stream.
	var in bytes.Buffer
	tw := tar.NewWriter(&in)
	files := map[string]string{"project/README": "demo\n", "project/src/main.sh": "echo built\n"}
	for _, name := range []string{"project/README", "project/src/main.sh"} {
		body := files[name]
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body))}); err != nil {
			return err
		}
		tw.Write([]byte(body))
	}
	tw.Close()
	if err := svc.CopyIn(ctx, box.ID, "/root", &in); err != nil {
		return err
	}
	out.Reset()
	if _, err := svc.Exec(ctx, box.ID, boxrun.ExecRequest{Cmd: []string{"sh", "src/main.sh"}, Workdir: "/root/project"}, &out, nil); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "ran the copied script: %s", out.String())

	// ...and out again: entries start with the directory's base name.
	var tarOut bytes.Buffer
	if err := svc.CopyOut(ctx, box.ID, "/root/project", &tarOut); err != nil {
		return err
	}
	tr := tar.NewReader(&tarOut)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "archive entry: %s\n", h.Name)
	}
	return nil
}
