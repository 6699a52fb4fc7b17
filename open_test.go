package boxrun_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/boxruntest"
	"github.com/boxrun/boxrun/driver/gvisor"
	"github.com/boxrun/boxrun/image"
)

// boxrun.Open with no options is a working Manager: the default gVisor
// driver and an image store under dir/images. A box from a local OCI layout
// runs a command, takes a file in and gives it back, and goes away.
func TestOpen_ZeroConfig(t *testing.T) {
	boxruntest.RequireRoot(t)
	if _, err := os.Stat(boxruntest.BusyboxPath); err != nil {
		boxruntest.SkipEnv(t, "busybox-static is missing (apt-get install busybox-static)")
	}
	if os.Getenv(gvisor.RunscEnv) == "" {
		boxruntest.SkipEnv(t, "$BOXRUN_RUNSC is not set (make test sets it)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if os.Getenv(gvisor.InitEnv) == "" {
		initPath := filepath.Join(t.TempDir(), gvisor.InitName)
		if err := gvisor.BuildInit(ctx, initPath); err != nil {
			t.Fatal(err)
		}
		t.Setenv(gvisor.InitEnv, initPath)
	}
	layoutDir := filepath.Join(t.TempDir(), "layout")
	if err := image.BuildBusyboxLayout(ctx, boxruntest.BusyboxPath, layoutDir); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	m, err := boxrun.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if got, want := m.DriverInfo().Name, "gvisor"; got != want {
		t.Fatalf("default driver = %q, want %q", got, want)
	}

	box, err := m.Create(ctx, boxrun.BoxSpec{Image: "oci:" + layoutDir, Name: "zero"})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	e, err := m.Exec(ctx, box.ID, boxrun.ExecRequest{Cmd: []string{"sh", "-c", "echo hello from $(uname -s)"}}, &out, nil)
	if err != nil {
		t.Fatal(err)
	}
	if e.ExitCode == nil || *e.ExitCode != 0 || !strings.HasPrefix(out.String(), "hello from Linux") {
		t.Fatalf("exec: status %s, output %q", e.Status, out.String())
	}
	if err := m.UploadFile(ctx, box.ID, "/root/in.txt", strings.NewReader("round trip")); err != nil {
		t.Fatal(err)
	}
	var back bytes.Buffer
	if err := m.DownloadFile(ctx, box.ID, "/root/in.txt", &back); err != nil {
		t.Fatal(err)
	}
	if got, want := back.String(), "round trip"; got != want {
		t.Fatalf("download = %q, want %q", got, want)
	}
	imgs, err := m.Images(ctx)
	if err != nil || len(imgs) != 1 {
		t.Fatalf("images = %v, %v; want the one layout image in dir/images", imgs, err)
	}
	if err := m.Remove(ctx, box.ID, true); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Get(ctx, box.ID); !errors.Is(err, boxrun.ErrNotFound) {
		t.Fatalf("get after remove: %v", err)
	}
}

// Without runsc anywhere, Open says how to get it.
func TestOpen_ZeroConfigMissingRunsc(t *testing.T) {
	t.Setenv(gvisor.RunscEnv, filepath.Join(t.TempDir(), "no-runsc"))
	_, err := boxrun.Open(t.TempDir())
	if err == nil {
		t.Fatal("Open without runsc succeeded")
	}
	for _, want := range []string{"runsc", "go build", "WithDriver"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}
