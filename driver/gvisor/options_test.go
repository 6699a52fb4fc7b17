package gvisor_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/internal/testenv"
	"github.com/boxrun/boxrun/sandbox"
)

func TestDriver_Volumes(t *testing.T) {
	d, _ := newDriver(t)
	rw, ro := t.TempDir(), t.TempDir()
	// Box root is host ID IDBase: give it the volume (rootless, box root
	// is the driver's user, which owns it already).
	if base := d.Limits().IDBase; base != 0 {
		if err := os.Chown(rw, int(base), int(base)); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(ro, "conf"), []byte("cfg"), 0o644)
	img := &sandbox.Image{Ref: "busybox", Rootfs: busyboxRootfs(t)}
	h := create(t, d, sandbox.Spec{BoxID: "vol", Image: img, Volumes: []boxapi.Volume{
		{HostPath: rw, GuestPath: "/data"},
		{HostPath: ro, GuestPath: "/etc/app", Readonly: true},
	}})
	if _, _, code := run(t, d, h, nil, "sh", "-c", "echo w > /data/out"); code != 0 {
		t.Fatalf("write to rw volume: exit %d", code)
	}
	if b, _ := os.ReadFile(filepath.Join(rw, "out")); string(b) != "w\n" {
		t.Fatalf("host sees %q", b)
	}
	if out, _, _ := run(t, d, h, nil, "cat", "/etc/app/conf"); out != "cfg" {
		t.Fatalf("ro volume: %q", out)
	}
	if _, errOut, code := run(t, d, h, nil, "sh", "-c", "echo x > /etc/app/new"); code == 0 || !strings.Contains(errOut, "Read-only") {
		t.Fatalf("write to ro volume: exit %d, %q", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(ro, "new")); err == nil {
		t.Fatal("ro volume was written")
	}
	// Creating with a missing host path fails cleanly.
	_, err := d.Create(context.Background(), sandbox.Spec{BoxID: "bad", Image: img, Volumes: []boxapi.Volume{{HostPath: "/no/such/dir", GuestPath: "/x"}}})
	if !errors.Is(err, boxapi.ErrInvalid) {
		t.Fatalf("missing volume: %v", err)
	}
}

func TestDriver_Limits(t *testing.T) {
	d, _ := newDriver(t)
	if !d.Limits().Memory {
		testenv.Skip(t, "no memory cgroup controller on this host")
	}
	img := &sandbox.Image{Ref: "busybox", Rootfs: busyboxRootfs(t)}
	h := create(t, d, sandbox.Spec{BoxID: "lim", Image: img, CPU: 1, MemoryMB: 200})
	out, _, _ := run(t, d, h, nil, "sh", "-c", "grep MemTotal /proc/meminfo")
	if !strings.Contains(out, " 204800 kB") {
		t.Fatalf("MemTotal inside: %q, want 204800 kB", out)
	}
	b, err := os.ReadFile("/sys/fs/cgroup/memory/boxrun/" + h + "/memory.limit_in_bytes")
	if d.Limits().Cgroups == "v1" && (err != nil || strings.TrimSpace(string(b)) != "209715200") {
		t.Fatalf("memory cgroup limit: %q %v", b, err)
	}
	if d.Limits().CPU && d.Limits().Cgroups == "v1" {
		b, err := os.ReadFile("/sys/fs/cgroup/cpu/boxrun/" + h + "/cpu.cfs_quota_us")
		if err != nil || strings.TrimSpace(string(b)) != "100000" {
			t.Fatalf("cpu quota: %q %v", b, err)
		}
	}
}

func TestDriver_Network(t *testing.T) {
	d, _ := newDriver(t)
	img := &sandbox.Image{Ref: "busybox", Rootfs: busyboxRootfs(t)}
	ifaces := func(h string) []string {
		out, _, _ := run(t, d, h, nil, "sh", "-c", "tail -n +3 /proc/net/dev | cut -d: -f1")
		return strings.Fields(out)
	}
	off := create(t, d, sandbox.Spec{BoxID: "off", Image: img})
	if got := ifaces(off); len(got) != 1 || got[0] != "lo" {
		t.Fatalf("network off: interfaces %v, want [lo]", got)
	}
	// Loopback works without network.
	if out, _, code := run(t, d, off, nil, "sh", "-c", "nc -l -p 7001 -e echo pong & sleep 0.3; echo | nc 127.0.0.1 7001"); code != 0 || !strings.Contains(out, "pong") {
		t.Fatalf("loopback: %q %d", out, code)
	}
	// A networked box has its own namespace (never the host's network):
	// loopback plus its own interface, and a resolv.conf naming its
	// gateway's policy resolver. Rootless mode refuses network (no per-box
	// namespace without root).
	if os.Geteuid() != 0 {
		if _, err := d.Create(context.Background(), sandbox.Spec{BoxID: "on", Image: img, Network: true}); !errors.Is(err, boxapi.ErrInvalid) {
			t.Fatalf("rootless networked create: %v, want ErrInvalid", err)
		}
		return
	}
	on := create(t, d, sandbox.Spec{BoxID: "on", Image: img, Network: true})
	if got := ifaces(on); len(got) != 2 {
		t.Fatalf("network on: interfaces %v, want lo and the box's own", got)
	}
	if out, _, _ := run(t, d, on, nil, "cat", "/etc/resolv.conf"); !strings.HasPrefix(out, "nameserver 10.") {
		t.Fatalf("resolv.conf in a box with network: %q, want its gateway's resolver", out)
	}
}
