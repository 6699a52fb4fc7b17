package qemu_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/boxruntest"
	"github.com/boxrun/boxrun/client"
	"github.com/boxrun/boxrun/driver/qemu"
	"github.com/boxrun/boxrun/httpapi"
	"github.com/boxrun/boxrun/internal/testinet"
	"github.com/boxrun/boxrun/sandbox"
)

// TestNetworkCrash: the process that owns a networked box (a published
// port) dies by SIGKILL; a new driver on the same directory gives the
// running box its resolver, policy and port back (names resolve, the
// metadata address is still denied and reported, the port answers), and
// Prune then removes the box with its tap, table and everything else.
func TestNetworkCrash(t *testing.T) {
	requireQEMU(t)
	in := testinet.New(t)
	dir := t.TempDir()
	h := crashOwner(t, dir, crashDNSEnv+"="+in.DNS)

	d, err := qemu.New(qemu.Config{Dir: dir, Agent: agent.get(t), DNS: []string{in.DNS}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var mu sync.Mutex
	var denied []sandbox.NetDenial
	d.OnNetDenied(func(n sandbox.NetDenial) { mu.Lock(); denied = append(denied, n); mu.Unlock() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if st, err := d.State(ctx, h); err != nil || st != sandbox.Running {
		t.Fatalf("State after the owner's crash = %v, %v; want running", st, err)
	}
	if out, _, code := run(t, d, h, "", "timeout", "10", "wget", "-q", "-O", "-", "http://"+testinet.AllowedName+"/"); code != 0 || strings.TrimSpace(out) != in.Body {
		t.Errorf("by name after the restart: %q, exit %d", out, code)
	}
	if _, _, code := run(t, d, h, "", "timeout", "10", "wget", "-q", "-O", "-", "http://"+in.MetadataAddr.String()+"/"); code == 0 {
		t.Error("metadata address reachable after the restart")
	}
	want := in.MetadataAddr.String() + ":80/tcp"
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		mu.Lock()
		n := 0
		for _, dn := range denied {
			if dn.Handle == h && dn.Destination == want {
				n++
			}
		}
		mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("denials of %s after the restart: %d, want 1", want, n)
			break
		}
	}
	info, err := d.NetInfo(ctx, h)
	if err != nil || len(info.Ports) != 1 || info.Ports[0].HostPort == 0 {
		t.Fatalf("NetInfo after the restart: %+v, %v", info, err)
	}
	if _, err := d.Exec(ctx, h, sandbox.ProcessSpec{Cmd: []string{"sh", "-c", "mkdir -p /tmp/www && echo PORT OK > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www"}}); err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/", info.Ports[0].HostPort)
	var body string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && body != "PORT OK"; time.Sleep(200 * time.Millisecond) {
		if resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(url); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = strings.TrimSpace(string(b))
		}
	}
	if body != "PORT OK" {
		t.Errorf("published port after the restart answered %q", body)
	}
	// Nothing kept: the box and its network go.
	if err := d.Prune(ctx, nil); err != nil {
		t.Fatal(err)
	}
	assertNothingLeft(t, dir, h)
	boxruntest.AssertNoNetworkLeft(t, h)
}

// TestNetworkTrust: a networked QEMU box cannot reach the API that manages
// it: not on host loopback TCP (its own 127.0.0.1 is the guest's), not
// through its gateway or another host address (even with the token), and
// not on the Unix socket, which no path in the VM leads to.
func TestNetworkTrust(t *testing.T) {
	requireQEMU(t)
	in := testinet.New(t)
	dir := t.TempDir()
	d, err := qemu.New(qemu.Config{Dir: filepath.Join(dir, "qemu"), Agent: agent.get(t), DNS: []string{in.DNS}})
	if err != nil {
		t.Fatal(err)
	}
	m, err := boxrun.Open(dir, boxrun.WithDriver(d), boxrun.WithImages(oneImage{boxruntest.BusyboxImage(t)}), boxrun.WithLimits(8, 8<<10))
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "api.sock")
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	serve := func(s *httpapi.Server, ln net.Listener) {
		wg.Add(1)
		go func() { defer wg.Done(); s.Serve(ctx, ln) }()
	}
	loop, err := httpapi.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	loopPort := loop.Addr().(*net.TCPAddr).Port
	serve(httpapi.New(m), loop)
	unixLn, err := httpapi.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	serve(httpapi.New(m), unixLn)
	anyLn, err := httpapi.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	anyPort := anyLn.Addr().(*net.TCPAddr).Port
	serve(httpapi.New(m, httpapi.WithToken("secret")), anyLn)
	defer func() {
		cancel()
		wg.Wait()
		m.Close()
		pruneAll(t, filepath.Join(dir, "qemu"), agent.get(t))
	}()
	c, err := client.New(fmt.Sprintf("http://127.0.0.1:%d", loopPort))
	if err != nil {
		t.Fatal(err)
	}
	box, err := c.Create(ctx, boxrun.BoxSpec{Image: "busybox", Network: true, Workdir: "/", CPU: 1, MemoryMB: 256, DiskSizeGB: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Remove(context.Background(), box.ID, true)
	info, err := c.BoxNetwork(ctx, box.ID)
	if err != nil || info.Gateway == "" {
		t.Fatalf("BoxNetwork: %+v, %v", info, err)
	}
	boxRun := func(script string) (string, int) {
		var out strings.Builder
		x, err := c.Exec(ctx, box.ID, boxrun.ExecRequest{Cmd: []string{"sh", "-c", script}, TimeoutMS: 60000}, &out, nil)
		if err != nil {
			t.Fatal(err)
		}
		if x.ExitCode == nil {
			t.Fatalf("exec %q: no exit code: %+v", script, x)
		}
		return strings.TrimSpace(out.String()), *x.ExitCode
	}
	// The box does have the internet: the API is out of reach because of
	// the policy, not for lack of a network.
	if out, code := boxRun("timeout 10 wget -q -O - http://" + in.Addr.String() + "/"); code != 0 || out != in.Body {
		t.Fatalf("box has no internet: %q, %d", out, code)
	}
	for _, url := range []string{
		fmt.Sprintf("http://127.0.0.1:%d/v1/info", loopPort),
		fmt.Sprintf("http://%s:%d/v1/info", info.Gateway, loopPort),
		fmt.Sprintf("http://%s:%d/v1/info?access_token=secret", info.Gateway, anyPort),
		fmt.Sprintf("http://%s:%d/v1/info?access_token=secret", in.HostAddr, anyPort),
	} {
		if out, code := boxRun("timeout 10 wget -q -O - '" + url + "'"); code == 0 || strings.Contains(out, "max_cpu") {
			t.Errorf("box reached the API at %s: %q", url, out)
		}
	}
	if out, code := boxRun("printf 'GET /v1/info HTTP/1.0\\r\\n\\r\\n' | timeout 5 nc local:" + sock + "; ls -l " + sock); code == 0 || strings.Contains(out, "max_cpu") {
		t.Errorf("box reached the Unix socket: %q", out)
	}
	if st, err := os.Stat(sock); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("socket mode: %v, %v", st.Mode(), err)
	}
	if _, err := c.Info(ctx); err != nil {
		t.Error(err)
	}
}

// BenchmarkNetworkPath: TCP throughput, connect latency and DNS latency of
// a networked VM (TCG here) vs the bare host, same run (see
// boxruntest.BenchNetwork). The probe is a volume, so the VM boots cold.
func BenchmarkNetworkPath(b *testing.B) {
	requireQEMU(b)
	in := testinet.New(b)
	dir := b.TempDir()
	d, err := qemu.New(qemu.Config{Dir: dir, Agent: agent.get(b), DNS: []string{in.DNS}})
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		d.Close()
		if d2, err := qemu.New(qemu.Config{Dir: dir, Agent: agent.get(b)}); err == nil {
			d2.Prune(context.Background(), nil)
			d2.Close()
		}
	}()
	boxruntest.BenchNetwork(b, d, in, boxruntest.BusyboxImage(b))
}

// TestNetworkSpoofedSource: root in a VM can send from any source address;
// the box's table drops whatever does not come from the box's own address,
// so a forged source never reaches the internet (a raw socket in the test
// internet records the sources of every TCP packet it receives), while the
// box's own traffic still does (as the host's NAT address).
func TestNetworkSpoofedSource(t *testing.T) {
	requireQEMU(t)
	in := testinet.New(t)
	var mu sync.Mutex
	seen := map[string]int{}
	var raw *net.IPConn
	testinet.InNS(t, in.NS, func() error {
		var err error
		raw, err = net.ListenIP("ip4:tcp", &net.IPAddr{IP: in.Addr.AsSlice()})
		return err
	})
	defer raw.Close()
	go func() {
		buf := make([]byte, 2048)
		for {
			_, from, err := raw.ReadFrom(buf)
			if err != nil {
				return
			}
			mu.Lock()
			seen[from.String()]++
			mu.Unlock()
		}
	}()
	dir := t.TempDir()
	d, err := qemu.New(qemu.Config{Dir: dir, Agent: agent.get(t), DNS: []string{in.DNS}})
	if err != nil {
		t.Fatal(err)
	}
	defer pruneAll(t, dir, agent.get(t))
	defer d.Close()
	ctx := t.Context()
	h, err := d.Create(ctx, sandbox.Spec{BoxID: "spoof", Image: boxruntest.BusyboxImage(t), CPU: 1, MemoryMB: 256, DiskSizeGB: 1,
		Network: true, Env: []string{"PATH=/bin:/sbin:/usr/bin:/usr/sbin"}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Remove(context.Background(), h)
	info, err := d.NetInfo(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	const forged = "192.0.2.77"
	url := "http://" + in.Addr.String() + "/"
	script := fmt.Sprintf("ip addr add %s/32 dev eth0 && ip route replace default via %s dev eth0 src %s && ip route && timeout 5 wget -q -O - %s",
		forged, info.Gateway, forged, url)
	if out, errOut, code := run(t, d, h, "", "sh", "-c", script); code == 0 || strings.Contains(out, in.Body) {
		t.Errorf("a forged source reached the internet: %q %q", out, errOut)
	} else if !strings.Contains(out, "src "+forged) {
		t.Fatalf("the box could not forge its source (test setup): %q %q", out, errOut)
	}
	script = fmt.Sprintf("ip route replace default via %s dev eth0 src %s && timeout 10 wget -q -O - %s", info.Gateway, info.Address, url)
	if out, errOut, code := run(t, d, h, "", "sh", "-c", script); code != 0 || strings.TrimSpace(out) != in.Body {
		t.Errorf("the box's own address: %q %q, exit %d", out, errOut, code)
	}
	mu.Lock()
	defer mu.Unlock()
	if seen[forged] != 0 {
		t.Errorf("the internet received %d TCP packets from the forged source %s", seen[forged], forged)
	}
	if seen[in.HostAddr.String()] == 0 {
		t.Errorf("the internet saw no packet of the box (as the host's NAT address %s): %v", in.HostAddr, seen)
	}
}
