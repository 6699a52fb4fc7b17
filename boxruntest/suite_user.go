package boxruntest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/sandbox"
)

// testUser covers SandboxSpec.User: unknown names are refused at Create,
// the default is root, and with DriverHarness.UserImage every process (TTY
// or not) runs as BusyboxUser with its groups and HOME, without root's
// powers.
func (s *suite) testUser(t *testing.T) {
	t.Run("Unknown", func(t *testing.T) {
		img := s.h.UserImage
		if img == nil {
			img = s.h.Image
		}
		for _, user := range []string{"boxrun-no-such-user", "root:boxrun-no-such-group"} {
			spec := sandbox.Spec{BoxID: "boxruntest-baduser", Image: img, CPU: 1, MemoryMB: 256, DiskSizeGB: 1,
				Workdir: "/work/dir", User: user}
			if img != nil {
				spec.Env = slices.Clone(img.Config.Env)
			}
			h, err := s.d.Create(t.Context(), spec)
			if err == nil {
				_ = s.d.Remove(context.Background(), h)
			}
			if user == "root:boxrun-no-such-group" && img == nil {
				continue // no image, no /etc/group: only the user part is checked
			}
			if !errors.Is(err, boxrun.ErrInvalid) {
				t.Errorf("Create with User %q: %v; want an error wrapping ErrInvalid", user, err)
			}
		}
	})
	if s.h.HostProcesses {
		return // the fake runs everything as the test's user
	}

	t.Run("DefaultRoot", func(t *testing.T) {
		r := s.run(t, s.shared, sh("/work/dir", `id -u; echo "$HOME"`))
		if r.code != 0 || r.stdout != "0\n/root\n" {
			t.Errorf("code %d, stdout %q; want 0 and %q", r.code, r.stdout, "0\n/root\n")
		}
	})

	if s.h.UserImage == nil {
		t.Log("DriverHarness.UserImage is nil: user switching not checked")
		return
	}
	img := s.h.UserImage
	env := append(slices.Clone(img.Config.Env), "BOXRUN_TEST=user")
	h, err := s.d.Create(t.Context(), sandbox.Spec{BoxID: "boxruntest-user", Image: img, CPU: 1, MemoryMB: 256,
		DiskSizeGB: 1, Workdir: "/work/user", Env: env, User: img.Config.User})
	if err != nil {
		t.Fatalf("Create with User %q: %v", img.Config.User, err)
	}
	t.Cleanup(func() {
		if err := s.d.Remove(context.Background(), h); err != nil {
			t.Errorf("cleanup: Remove: %v", err)
		}
	})
	const wd = "/work/user"

	t.Run("IDs", func(t *testing.T) {
		r := s.run(t, h, sh(wd, `id -u; id -g; id -G; echo "$HOME"`))
		lines := strings.Split(r.stdout, "\n")
		if r.code != 0 || len(lines) < 4 {
			t.Fatalf("code %d, stdout %q", r.code, r.stdout)
		}
		if lines[0] != fmt.Sprint(BusyboxUID) || lines[1] != fmt.Sprint(BusyboxGID) {
			t.Errorf("id -u, id -g = %q, %q; want %d, %d", lines[0], lines[1], BusyboxUID, BusyboxGID)
		}
		if !slices.Contains(strings.Fields(lines[2]), fmt.Sprint(BusyboxExtraGID)) {
			t.Errorf("id -G = %q; want the supplementary group %d", lines[2], BusyboxExtraGID)
		}
		if lines[3] != BusyboxHome {
			t.Errorf("HOME = %q, want %q (from /etc/passwd)", lines[3], BusyboxHome)
		}
	})

	t.Run("EnvHome", func(t *testing.T) {
		spec := sh(wd, `echo "$HOME"`)
		spec.Env = []string{"HOME=/elsewhere"}
		if r := s.run(t, h, spec); r.stdout != "/elsewhere\n" {
			t.Errorf("stdout %q; want the exec's HOME", r.stdout)
		}
	})

	t.Run("NotPrivileged", func(t *testing.T) {
		// /root is root's, mode 0700: no capability may get around that.
		r := s.run(t, h, sh(wd, "ls /root >/dev/null 2>&1 && echo listed; touch /root/x 2>/dev/null && echo wrote; echo done"))
		if r.stdout != "done\n" {
			t.Errorf("stdout %q; the user must not read or write /root", r.stdout)
		}
		// No effective capabilities (the hex mask is all zeros).
		if r := s.run(t, h, sh(wd, "grep CapEff /proc/self/status")); r.code != 0 || strings.Trim(strings.TrimPrefix(r.stdout, "CapEff:"), "0 \t\n") != "" {
			t.Errorf("code %d, %q; want no effective capabilities", r.code, r.stdout)
		}
	})

	t.Run("TTY", func(t *testing.T) {
		spec := sh(wd, "id -u")
		spec.TTY = true
		if r := s.run(t, h, spec); r.code != 0 || !strings.Contains(r.stdout, fmt.Sprint(BusyboxUID)) {
			t.Errorf("TTY id -u: code %d, output %q; want %d", r.code, r.stdout, BusyboxUID)
		}
	})
}
