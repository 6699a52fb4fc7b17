package userdb_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/boxrun/boxrun/internal/userdb"
)

func writeRoot(t *testing.T, passwd, group string) string {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"passwd": passwd, "group": group} {
		if err := os.WriteFile(filepath.Join(root, "etc", name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestResolve(t *testing.T) {
	root := writeRoot(t,
		"root:x:0:0:root:/root:/bin/sh\n# comment\n\nbroken line\nalice:x:1000:1000::/home/alice:/bin/sh\nbob:x:1001:100::/home/bob:/bin/sh\n",
		"root:x:0:\nalice:x:1000:\nusers:x:100:alice\nwheel:x:10:alice,bob\nstaff:x:50:bob\n")
	for _, c := range []struct {
		spec string
		want userdb.User
	}{
		{"", userdb.User{UID: 0, GID: 0, Home: "/root"}},
		{"root", userdb.User{UID: 0, GID: 0, Home: "/root"}},
		{"alice", userdb.User{UID: 1000, GID: 1000, Groups: []uint32{10, 100}, Home: "/home/alice"}},
		{"1000", userdb.User{UID: 1000, GID: 1000, Groups: []uint32{10, 100}, Home: "/home/alice"}},
		{"alice:wheel", userdb.User{UID: 1000, GID: 10, Groups: []uint32{100}, Home: "/home/alice"}},
		{"bob:50", userdb.User{UID: 1001, GID: 50, Groups: []uint32{10}, Home: "/home/bob"}},
		{"4242", userdb.User{UID: 4242, GID: 0, Home: "/"}},
		{"4242:4343", userdb.User{UID: 4242, GID: 4343, Home: "/"}},
		{"4242:users", userdb.User{UID: 4242, GID: 100, Home: "/"}},
	} {
		got, err := userdb.Resolve(root, c.spec)
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("Resolve(%q) = %+v, %v; want %+v", c.spec, got, err, c.want)
		}
	}
	for _, c := range []struct {
		spec string
		want error
	}{
		{"carol", userdb.ErrUnknown},
		{"alice:nogroup", userdb.ErrUnknown},
		{"99999999999", userdb.ErrUnknown},
		{":wheel", userdb.ErrSyntax},
		{"alice:", userdb.ErrSyntax},
	} {
		if _, err := userdb.Resolve(root, c.spec); !errors.Is(err, c.want) {
			t.Errorf("Resolve(%q) error = %v, want %v", c.spec, err, c.want)
		}
	}
}

func TestResolveNoDatabase(t *testing.T) {
	for _, root := range []string{"", t.TempDir()} {
		if u, err := userdb.Resolve(root, "1:2"); err != nil || u.UID != 1 || u.GID != 2 || u.Home != "/" {
			t.Errorf("Resolve(%q, 1:2) = %+v, %v", root, u, err)
		}
		if _, err := userdb.Resolve(root, "root"); !errors.Is(err, userdb.ErrUnknown) {
			t.Errorf("Resolve(%q, root) error = %v, want ErrUnknown", root, err)
		}
	}
}

func TestLoadConfined(t *testing.T) {
	// /etc/passwd as an absolute symlink resolves inside the root, not on
	// the host: here it points at nothing, so the database is empty.
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/../../../../etc/passwd", filepath.Join(root, "etc", "passwd")); err != nil {
		t.Fatal(err)
	}
	if _, err := userdb.Resolve(root, "root"); err == nil {
		t.Error("a symlinked /etc/passwd was read from outside the root")
	}
}

func TestHasEnv(t *testing.T) {
	if !userdb.HasEnv([]string{"A=1", "HOME=/x"}, "HOME") || userdb.HasEnv([]string{"HOMEX=1"}, "HOME") {
		t.Error("HasEnv")
	}
}
