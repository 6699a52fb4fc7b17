package userdb_test

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/boxrun/boxrun/internal/userdb"
)

// FuzzResolve: a box's /etc/passwd and /etc/group are written by the image
// (or the box itself) and the user spec comes from the image config or the
// API; resolving never panics, and a numeric user keeps its number.
func FuzzResolve(f *testing.F) {
	passwd := "root:x:0:0:root:/root:/bin/sh\nu:x:1000:1000::/home/u:/bin/sh\nbad line\n:x::::\n"
	group := "root:x:0:\nu:x:1000:u\nextra:x:2000:u,root\n"
	for _, spec := range []string{"", "root", "u", "1000", "1000:2000", "u:extra", "nobody", "-1", "0:-1", "4294967296", "u:", ":u", "a:b:c"} {
		f.Add(passwd, group, spec)
	}
	f.Fuzz(func(t *testing.T, passwd, group, spec string) {
		root := t.TempDir()
		if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(root, "etc", "passwd"), []byte(passwd), 0o644)
		os.WriteFile(filepath.Join(root, "etc", "group"), []byte(group), 0o644)
		u, err := userdb.Resolve(root, spec)
		if err != nil {
			return
		}
		// A numeric user that resolves keeps its number.
		if n, err := strconv.ParseUint(spec, 10, 32); err == nil && u.UID != uint32(n) {
			t.Fatalf("Resolve(%q) = %+v", spec, u)
		}
	})
}
