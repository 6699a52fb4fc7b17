package gvisor_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/image"
)

// TestManager_SnapshotNetworked: a networked box with an egress policy
// (deny the test internet's Denied address, allow the rest) is
// checkpointed, restored and forked. Every restored box has its own
// address and namespace (never its source's or a sibling's), its
// processes continue (counter), a server started before the checkpoint
// still listens, inside and through the box's own published host port
// (picked anew: the source keeps its own), and the policy holds from inside: Allowed
// answers, Denied and the host do not; SetEgress on a restored box
// changes only that box; the source keeps working. Rootless, networked
// boxes are refused before any of this (TestRootless covers the refusal).
func TestManager_SnapshotNetworked(t *testing.T) {
	d, in, _ := netDriver(t)
	dir := t.TempDir()
	images, err := image.Open(filepath.Join(dir, "images"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := boxrun.Open(dir, boxrun.WithDriver(d), boxrun.WithImages(images), boxrun.WithLimits(64, 64<<10))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	t.Cleanup(func() {
		boxes, _ := m.List(context.Background(), boxapi.BoxFilter{})
		for _, b := range boxes {
			_ = m.Remove(context.Background(), b.ID, true)
		}
		m.Close()
	})
	policy := &boxapi.EgressPolicy{Default: boxapi.EgressAllow, Rules: []boxapi.EgressRule{
		{Action: boxapi.EgressDeny, CIDR: in.Denied.String() + "/32"},
	}}
	src, err := m.Create(ctx, boxapi.BoxSpec{Image: "dir:" + busyboxRootfs(t), MemoryMB: 256, Workdir: "/", Network: true, Egress: policy,
		Ports: []boxapi.PortMapping{{BoxPort: 8080}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, code := mexec(t, m, src.ID, "sh", "-c", "echo kept > /data.txt && "+counterLoop); code != 0 {
		t.Fatal("counter did not start")
	}
	// A server listening in the box since before the checkpoint.
	if _, code := mexec(t, m, src.ID, "sh", "-c", "mkdir -p /www && echo served > /www/index.html && setsid httpd -p 8080 -h /www </dev/null >/dev/null 2>&1"); code != 0 {
		t.Fatal("httpd did not start")
	}
	before := mcount(t, m, src.ID, 10)
	wget := func(box, addr string) (string, int) {
		return mexec(t, m, box, "sh", "-c", "timeout 5 wget -q -O - http://"+addr+"/ 2>&1")
	}
	// The policy works before the checkpoint (the test's own baseline).
	if out, code := wget(src.ID, in.Allowed.String()); code != 0 || strings.TrimSpace(out) != in.Body {
		t.Fatalf("source box: allowed address: %q %d", out, code)
	}
	srcInfo, err := m.BoxNetwork(ctx, src.ID)
	if err != nil {
		t.Fatal(err)
	}

	snap, err := m.Checkpoint(ctx, src.ID, boxapi.CheckpointOptions{LeaveRunning: true})
	if err != nil {
		t.Fatalf("checkpoint of a networked box: %v", err)
	}
	r, err := m.Restore(ctx, snap.ID, boxapi.RestoreSpec{Name: "net-restored"})
	if err != nil {
		t.Fatalf("restore of a networked box: %v", err)
	}
	forks, err := m.Fork(ctx, src.ID, 2)
	if err != nil {
		t.Fatalf("fork of a networked box: %v", err)
	}
	addrs := map[string]string{srcInfo.Address: src.ID}
	if len(srcInfo.Ports) != 1 || srcInfo.Ports[0].HostPort == 0 {
		t.Fatalf("source ports: %+v", srcInfo.Ports)
	}
	hostPorts := map[int]string{srcInfo.Ports[0].HostPort: src.ID}
	for _, b := range append([]*boxapi.Box{r}, forks...) {
		info, err := m.BoxNetwork(ctx, b.ID)
		if err != nil || !info.Network || info.Address == "" {
			t.Fatalf("network of restored box %s: %+v %v", b.ID, info, err)
		}
		if other, dup := addrs[info.Address]; dup {
			t.Errorf("restored box %s shares address %s with %s", b.ID, info.Address, other)
		}
		addrs[info.Address] = b.ID
		if len(info.Egress.Rules) != 1 || info.Egress.Rules[0].CIDR != in.Denied.String()+"/32" {
			t.Errorf("policy of restored box %s: %+v", b.ID, info.Egress)
		}
		// Inside, the box's interface has its own address.
		if out, _ := mexec(t, m, b.ID, "sh", "-c", "ip -4 addr 2>/dev/null || ifconfig"); !strings.Contains(out, info.Address) {
			t.Errorf("box %s does not see its address %s inside:\n%s", b.ID, info.Address, out)
		}
		mcount(t, m, b.ID, before+3)
		// The server started before the checkpoint still listens, inside
		// and through the box's own published port.
		if out, code := mexec(t, m, b.ID, "sh", "-c", "timeout 5 wget -q -O - http://127.0.0.1:8080/ 2>&1"); code != 0 || out != "served\n" {
			t.Errorf("listener from before the checkpoint, in restored box %s: %q %d", b.ID, out, code)
		}
		if len(info.Ports) != 1 || info.Ports[0].BoxPort != 8080 || info.Ports[0].HostPort == 0 {
			t.Fatalf("ports of restored box %s: %+v", b.ID, info.Ports)
		}
		if other, dup := hostPorts[info.Ports[0].HostPort]; dup {
			t.Errorf("restored box %s shares host port %d with %s", b.ID, info.Ports[0].HostPort, other)
		}
		hostPorts[info.Ports[0].HostPort] = b.ID
		if got := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/", info.Ports[0].HostPort)); got != "served\n" {
			t.Errorf("published port of restored box %s: %q", b.ID, got)
		}
		if out, _ := mexec(t, m, b.ID, "cat", "/data.txt"); out != "kept\n" {
			t.Errorf("file in %s: %q", b.ID, out)
		}
		// The policy, from inside.
		if out, code := wget(b.ID, in.Allowed.String()); code != 0 || strings.TrimSpace(out) != in.Body {
			t.Errorf("restored box %s: allowed address: %q %d", b.ID, out, code)
		}
		if out, code := wget(b.ID, in.Denied.String()); code == 0 || strings.Contains(out, in.Body) {
			t.Errorf("restored box %s reached the denied address: %q", b.ID, out)
		}
		if out, code := wget(b.ID, in.HostAddr.String()); code == 0 || strings.Contains(out, in.Body) {
			t.Errorf("restored box %s reached a host address: %q", b.ID, out)
		}
	}
	if got := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/", srcInfo.Ports[0].HostPort)); got != "served\n" {
		t.Errorf("published port of the source after the restores: %q", got)
	}
	// A policy change on one restored box is that box's alone.
	if _, err := m.SetBoxEgress(ctx, r.ID, boxapi.EgressPolicy{Default: boxapi.EgressDeny}); err != nil {
		t.Fatal(err)
	}
	if _, code := wget(r.ID, in.Allowed.String()); code == 0 {
		t.Error("a deny-all restored box still reaches the internet")
	}
	for _, b := range []string{src.ID, forks[0].ID} {
		if out, code := wget(b, in.Allowed.String()); code != 0 || strings.TrimSpace(out) != in.Body {
			t.Errorf("box %s after another box's policy change: %q %d", b, out, code)
		}
	}
}

// httpGet fetches url from the host (generous retries: a proxy may need a
// moment) and returns the body, or the last error as text.
func httpGet(t *testing.T, url string) string {
	t.Helper()
	var last string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		resp, err := http.Get(url)
		if err != nil {
			last = err.Error()
			continue
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil && resp.StatusCode == 200 {
			return string(b)
		}
		last = fmt.Sprintf("%d %q %v", resp.StatusCode, b, err)
	}
	return last
}
