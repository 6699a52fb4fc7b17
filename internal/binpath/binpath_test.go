package binpath_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/boxrun/boxrun/internal/binpath"
)

func TestFindOrder(t *testing.T) {
	root := t.TempDir()
	state := filepath.Join(root, "state")
	bin := filepath.Join(root, "bin")
	other := filepath.Join(root, "other")
	for _, d := range []string{state, bin, other} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p string, mode os.FileMode) {
		if err := os.WriteFile(p, []byte("x"), mode); err != nil {
			t.Fatal(err)
		}
	}
	const name = "boxrun-binpath-test-tool"
	write(filepath.Join(bin, name), 0o755)
	write(filepath.Join(other, name), 0o755)
	write(filepath.Join(other, "plain"), 0o644)
	t.Setenv("BINPATH_TEST", "")
	t.Setenv("PATH", "")

	find := func(s binpath.Spec) (string, error) {
		s.Name, s.Dir, s.EnvVar = name, state, "BINPATH_TEST"
		return binpath.Find(s)
	}
	if p, err := find(binpath.Spec{Executable: true}); err != nil || p != filepath.Join(bin, name) {
		t.Errorf("<Dir>/../bin: %q, %v", p, err)
	}
	t.Setenv("BINPATH_TEST", filepath.Join(other, name))
	if p, err := find(binpath.Spec{Executable: true}); err != nil || p != filepath.Join(other, name) {
		t.Errorf("env var: %q, %v", p, err)
	}
	if p, err := find(binpath.Spec{Explicit: filepath.Join(bin, name)}); err != nil || p != filepath.Join(bin, name) {
		t.Errorf("explicit: %q, %v", p, err)
	}
	if _, err := find(binpath.Spec{Explicit: filepath.Join(other, "plain"), Executable: true}); !errors.Is(err, binpath.ErrNotFound) {
		t.Errorf("explicit non-executable: %v", err)
	}
	if p, err := find(binpath.Spec{Explicit: filepath.Join(other, "plain")}); err != nil || p != filepath.Join(other, "plain") {
		t.Errorf("explicit non-executable, none required: %q, %v", p, err)
	}
	t.Setenv("BINPATH_TEST", "")
	if err := os.Remove(filepath.Join(bin, name)); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", other)
	if p, err := find(binpath.Spec{Executable: true}); err != nil || p != filepath.Join(other, name) {
		t.Errorf("PATH: %q, %v", p, err)
	}
	t.Setenv("PATH", "")
	if _, err := find(binpath.Spec{Executable: true}); !errors.Is(err, binpath.ErrNotFound) {
		t.Errorf("nowhere: %v", err)
	}
}
