// Package binpath finds the host files a driver ships with (runsc, the
// gVisor in-box helper, the QEMU guest agent) by the lookup order the
// drivers document on their Config: an explicit path, an environment
// variable, <state dir>/../bin/<name>, <name> next to os.Executable(), then
// PATH. It imports nothing of boxrun.
package binpath

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// ErrNotFound is wrapped by Find's errors.
var ErrNotFound = errors.New("binpath: not found")

// Spec says what Find looks for.
type Spec struct {
	Name     string // file name: in <Dir>/../bin, next to the executable, in PATH
	Explicit string // a configured path; when set, the only candidate
	EnvVar   string // environment variable naming the path, tried next
	Dir      string // the driver's state directory; <Dir>/../bin/<Name> is tried
	// Executable requires the file to have an execute bit (a host binary;
	// a guest agent copied into an initramfs needs none).
	Executable bool
}

// Find returns the absolute path of the first candidate of s that is a
// regular file (executable if s.Executable). Its error wraps ErrNotFound
// and lists the candidates tried.
func Find(s Spec) (string, error) {
	var tried []string
	check := func(p string) (string, bool) {
		if p == "" {
			return "", false
		}
		abs, err := filepath.Abs(p)
		if err != nil {
			return "", false
		}
		tried = append(tried, abs)
		st, err := os.Stat(abs)
		if err != nil || st.IsDir() || (s.Executable && st.Mode()&0o111 == 0) {
			return "", false
		}
		return abs, true
	}
	if s.Explicit != "" {
		if p, ok := check(s.Explicit); ok {
			return p, nil
		}
		what := "missing"
		if s.Executable {
			what = "missing or not executable"
		}
		return "", fmt.Errorf("%s %s at %s: %w", s.Name, what, s.Explicit, ErrNotFound)
	}
	if s.EnvVar != "" {
		if p, ok := check(os.Getenv(s.EnvVar)); ok {
			return p, nil
		}
	}
	if s.Dir != "" {
		if p, ok := check(filepath.Join(s.Dir, "..", "bin", s.Name)); ok {
			return p, nil
		}
	}
	if exe, err := os.Executable(); err == nil {
		if p, ok := check(filepath.Join(filepath.Dir(exe), s.Name)); ok {
			return p, nil
		}
	}
	if p, err := exec.LookPath(s.Name); err == nil {
		if p, ok := check(p); ok {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found (tried $%s, %v and PATH): %w", s.Name, s.EnvVar, tried, ErrNotFound)
}
