package httpapi_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/boxrun/boxrun/httpapi"
	"github.com/boxrun/boxrun/internal/testenv"
)

// dialEnv names the socket TestHelperDialUnix dials when the test binary
// is re-run as another user.
const dialEnv = "BOXRUN_TEST_DIAL_UNIX"

// TestHelperDialUnix is not a test: run with dialEnv set (by
// TestListenUnixGroup, as another user), it dials that socket and exits 0
// when it connected, 3 when permission was denied, 4 otherwise.
func TestHelperDialUnix(t *testing.T) {
	path := os.Getenv(dialEnv)
	if path == "" {
		t.Skip("helper process only")
	}
	c, err := net.Dial("unix", path)
	switch {
	case err == nil:
		c.Close()
		os.Exit(0)
	case errors.Is(err, syscall.EACCES):
		os.Exit(3)
	}
	os.Stderr.WriteString(err.Error())
	os.Exit(4)
}

// TestListenUnixGroup: a socket made by ListenUnixGroup is 0660 with the
// group, a member of the group (another uid) can connect and a user outside
// it cannot; Listen's socket stays 0600 (owner only).
func TestListenUnixGroup(t *testing.T) {
	testenv.NeedRoot(t)
	const uid, gid = 65534, 54321 // nobody, and a group nobody is in
	dir, err := os.MkdirTemp("", "boxrun-sockgroup-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "httpapi.test")
	raw, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, raw, 0o755); err != nil {
		t.Fatal(err)
	}
	dial := func(sock string, groups []uint32) int {
		cmd := exec.Command(bin, "-test.run", "^TestHelperDialUnix$")
		cmd.Env = append(os.Environ(), dialEnv+"="+sock)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid, Groups: groups}}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if ee.ExitCode() == 4 {
				t.Logf("helper: %s", out.String())
			}
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatalf("helper: %v: %s", err, out.String())
		}
		return 0
	}
	accept := func(ln net.Listener) {
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				io.WriteString(c, "hello\n")
				c.Close()
			}
		}()
	}

	sock := filepath.Join(dir, "group.sock")
	ln, err := httpapi.ListenUnixGroup(sock, gid)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accept(ln)
	var st syscall.Stat_t
	if err := syscall.Stat(sock, &st); err != nil || st.Mode&0o777 != 0o660 || st.Gid != gid {
		t.Fatalf("socket mode %o gid %d (%v), want 0660 and gid %d", st.Mode&0o777, st.Gid, err, gid)
	}
	if code := dial(sock, []uint32{gid}); code != 0 {
		t.Errorf("a member of the group: exit %d, want 0 (connected)", code)
	}
	if code := dial(sock, nil); code != 3 {
		t.Errorf("a user outside the group: exit %d, want 3 (permission denied)", code)
	}

	owner := filepath.Join(dir, "owner.sock")
	ln2, err := httpapi.Listen("unix", owner)
	if err != nil {
		t.Fatal(err)
	}
	defer ln2.Close()
	accept(ln2)
	if code := dial(owner, []uint32{gid}); code != 3 {
		t.Errorf("Listen's 0600 socket, another user: exit %d, want 3 (permission denied)", code)
	}
	if _, err := httpapi.ListenUnixGroup(filepath.Join(dir, "bad.sock"), -1); err == nil {
		t.Error("ListenUnixGroup with gid -1: no error")
	}
}
