package boxinit_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/boxrun/boxrun/driver/gvisor/boxinit"
)

// install lays out /.boxrun of a Kubernetes pod: the directory (an
// emptyDir, 0777 when the init container gets it) becomes 0755, so a
// non-root box user cannot swap the init binary; init is this binary, agent
// is 0700.
func TestInstall(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "boxrun")
	if err := os.Mkdir(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if code := boxinit.Main([]string{"install", dir}); code != 0 {
		t.Fatalf("install: exit %d", code)
	}
	for name, want := range map[string]os.FileMode{"": 0o755 | os.ModeDir, "agent": 0o700 | os.ModeDir, "init": 0o755} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s/%s: mode %v, want %v", dir, name, fi.Mode(), want)
		}
	}
	self, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "init"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, self) {
		t.Error("init is not a copy of the running binary")
	}
}

// With a workdir, install makes it 0755 (whatever the umask) on the first
// start, and leaves an existing one as the box left it.
func TestInstall_Workdir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "boxrun")
	data := t.TempDir()
	if err := os.Mkdir(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	workdir := filepath.Join(data, "workdir")
	if code := boxinit.Main([]string{"install", dir, workdir}); code != 0 {
		t.Fatalf("install: exit %d", code)
	}
	if fi, err := os.Stat(workdir); err != nil || fi.Mode() != 0o755|os.ModeDir {
		t.Fatalf("workdir after the first install: %v %v, want 0755", fi.Mode(), err)
	}
	if err := os.Chmod(workdir, 0o700); err != nil {
		t.Fatal(err)
	}
	if code := boxinit.Main([]string{"install", dir, workdir}); code != 0 {
		t.Fatalf("second install: exit %d", code)
	}
	if fi, err := os.Stat(workdir); err != nil || fi.Mode() != 0o700|os.ModeDir {
		t.Fatalf("workdir after a restart: %v %v, want the box's 0700 kept", fi.Mode(), err)
	}
}
