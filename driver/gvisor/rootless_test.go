package gvisor_test

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/boxruntest"
	"github.com/boxrun/boxrun/driver/gvisor"
	"github.com/boxrun/boxrun/internal/testenv"
	"github.com/boxrun/boxrun/sandbox"
)

// rootlessUID is the unprivileged user TestRootless runs the driver as.
const rootlessUID = 65534

// TestRootless re-executes this test binary as uid 65534 (nobody) with
// every other test of the package (TestDriver_Limits skips: no cgroups), so
// the driver runs rootless for real: the binaries and a
// state directory are copied into a directory that user owns, and the
// child builds its own busybox rootfs under its own TMPDIR (owned by it,
// as an image store run by that user would unpack it).
func TestRootless(t *testing.T) {
	testenv.NeedRoot(t)
	runsc, init := os.Getenv(gvisor.RunscEnv), os.Getenv(gvisor.InitEnv)
	if runsc == "" || init == "" {
		testenv.Skip(t, "runsc or the helper missing")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "boxrun-rootless-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin, tmp := filepath.Join(dir, "bin"), filepath.Join(dir, "tmp")
	for _, p := range []string{bin, tmp} {
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	copies := map[string]string{runsc: gvisor.RunscName, init: gvisor.InitName, self: "gvisor.test"}
	for src, name := range copies {
		if err := copyExecutable(src, filepath.Join(bin, name)); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{dir, bin, tmp} {
		if err := os.Chown(p, rootlessUID, rootlessUID); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// The child gets what is left of this test's own deadline (a loaded
	// machine runs the package slowly), keeping a margin to report it.
	timeout := 10 * time.Minute
	if dl, ok := t.Deadline(); ok {
		timeout = max(time.Until(dl)-time.Minute, time.Minute)
	}
	args := []string{"-test.skip", "^TestRootless$", "-test.v", "-test.count=1", "-test.timeout=" + timeout.String()}
	// BOXRUN_ROOTLESS_RUN narrows the rootless run to the tests it matches
	// (a quick check of one test; CI leaves it unset and runs them all).
	only := os.Getenv("BOXRUN_ROOTLESS_RUN")
	if only != "" {
		args = append(args, "-test.run", only)
	}
	cmd := exec.Command(filepath.Join(bin, "gvisor.test"), args...)
	cmd.Dir = dir
	cmd.Env = append(filteredEnv(gvisor.RunscEnv, gvisor.InitEnv, "TMPDIR", "HOME"),
		gvisor.RunscEnv+"="+filepath.Join(bin, gvisor.RunscName),
		gvisor.InitEnv+"="+filepath.Join(bin, gvisor.InitName),
		"TMPDIR="+tmp, "HOME="+dir, testenv.RootlessRerunEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: rootlessUID, Gid: rootlessUID, Groups: []uint32{}},
		Pdeathsig:  syscall.SIGKILL,
	}
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("as uid %d (%v):\n%s", rootlessUID, time.Since(start).Round(time.Millisecond), out)
	if err != nil {
		t.Fatalf("rootless run: %v", err)
	}
	for _, name := range []string{"TestConformance", "TestRootlessMode"} {
		if only != "" {
			break
		}
		if !regexp.MustCompile(`(?m)^--- PASS: ` + name + ` `).Match(out) {
			t.Errorf("%s did not pass as uid %d", name, rootlessUID)
		}
	}
}

// TestRootlessMode checks what differs without root (see the package doc):
// Limits says rootless and enforces nothing, and a non-root box user cannot
// create files on a volume (the gofer cannot chown them to an unmapped uid)
// while box root can. As root, both users can (on a volume of an ordinary
// user's).
func TestRootlessMode(t *testing.T) {
	d, _ := newDriver(t)
	rootless := os.Geteuid() != 0
	if l := d.Limits(); l.Rootless != rootless || rootless && (l.Cgroups != "" || l.CPU || l.Memory) {
		t.Fatalf("Limits as uid %d: %+v", os.Geteuid(), l)
	}
	vol := t.TempDir()
	if err := os.Chmod(vol, 0o1777); err != nil {
		t.Fatal(err)
	}
	if !rootless {
		// As root, a read-write volume must not belong to host root
		// (box root is not host root; see volumeSource): a user's.
		if err := os.Chown(vol, volumeUser, volumeUser); err != nil {
			t.Fatal(err)
		}
	}
	for _, user := range []string{"", boxruntest.BusyboxUser} {
		img := boxruntest.BusyboxImageWithUser(t, user)
		h := create(t, d, sandbox.Spec{BoxID: "user", Image: img, User: user,
			Volumes: []boxapi.Volume{{HostPath: vol, GuestPath: "/vol"}}})
		name := "by-" + user
		_, errOut, code := run(t, d, h, nil, "sh", "-c", "echo x > /vol/"+name)
		if want := rootless && user != ""; (code != 0) != want {
			t.Errorf("user %q writes a new file on a volume: exit %d (%q); want failure %v", user, code, errOut, want)
		}
		if err := d.Remove(context.Background(), h); err != nil {
			t.Fatal(err)
		}
	}
}

// filteredEnv is os.Environ without the given variables.
func filteredEnv(drop ...string) []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		keep := true
		for _, d := range drop {
			keep = keep && k != d
		}
		if keep {
			out = append(out, kv)
		}
	}
	return out
}

// copyExecutable copies src to dst with mode 0755, owned by rootlessUID.
func copyExecutable(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chown(dst, rootlessUID, rootlessUID)
}
