package boxruntest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/internal/testinet"
	"github.com/boxrun/boxrun/sandbox"
)

// testNetwork checks sandbox.NetworkDriver on a test internet made on this
// machine (as root; without root it only checks that a networked box is
// refused): a networked box reaches the internet by address and by name; it
// cannot reach the host (loopback, the gateway, another host address),
// link-local metadata or another box, and each denied connect is one
// net.denied report; egress rules replaced on the running box take effect
// at once; a published port answers on host loopback; bad ports are
// ErrInvalid; and Remove leaves no namespace, link or table.
func (s *suite) testNetwork(t *testing.T) {
	if s.h.NewNetworked == nil {
		t.Skip("the driver has no network (DriverHarness.NewNetworked is nil)")
	}
	if os.Geteuid() != 0 {
		// Box networks need root: a networked box must be refused, and
		// nothing else is checked.
		_, err := s.d.Create(t.Context(), sandbox.Spec{BoxID: "boxruntest-net-rootless", Image: s.h.Image, Network: true})
		if !errors.Is(err, boxrun.ErrInvalid) {
			t.Errorf("networked Create without root: %v, want ErrInvalid (refused)", err)
		}
		return
	}
	in := testinet.New(t)
	d := s.h.NewNetworked(t, []string{in.DNS})
	defer d.Close()
	nd, ok := d.(sandbox.NetworkDriver)
	if !ok {
		t.Fatalf("driver %s: NewNetworked's driver does not implement sandbox.NetworkDriver", d.Name())
	}
	dn := &NetDenials{}
	nd.OnNetDenied(dn.Add)
	ctx := t.Context()
	ns := &netSuite{suite: &suite{d: d, h: s.h}, nd: nd, in: in, dn: dn}

	a := ns.box(t, "net-a", nil, boxrun.PortMapping{BoxPort: 8080})
	b := ns.box(t, "net-b", nil)
	infoA, err := nd.NetInfo(ctx, a)
	if err != nil || infoA.Address == "" || infoA.Gateway == "" || len(infoA.Ports) != 1 ||
		infoA.Ports[0].HostPort == 0 || infoA.Ports[0].HostIP != "127.0.0.1" {
		t.Fatalf("NetInfo of a running networked box: %+v, %v", infoA, err)
	}
	infoB, err := nd.NetInfo(ctx, b)
	if err != nil || infoB.Address == "" || infoB.Address == infoA.Address {
		t.Fatalf("NetInfo of the second box: %+v, %v", infoB, err)
	}

	t.Run("Internet", func(t *testing.T) {
		for _, url := range []string{"http://" + in.Addr.String() + "/", "http://" + testinet.AllowedName + "/"} {
			if body, code := Fetch(t, ns.d, a, url); code != 0 || body != in.Body {
				t.Errorf("%s from the box: %q, exit %d", url, body, code)
			}
		}
	})

	t.Run("HostDenied", func(t *testing.T) {
		loopPort := HostHTTP(t, "127.0.0.1:0")
		anyPort := HostHTTP(t, "0.0.0.0:0")
		ns.serve(t, b, "BOX B")
		blocked := map[string]string{
			"host loopback (the box's own)":  fmt.Sprintf("127.0.0.1:%d", loopPort),
			"host loopback port via gateway": fmt.Sprintf("%s:%d", infoA.Gateway, loopPort),
			"host, gateway address":          fmt.Sprintf("%s:%d", infoA.Gateway, anyPort),
			"host, another address":          fmt.Sprintf("%s:%d", in.HostAddr, anyPort),
			"link-local metadata":            in.MetadataAddr.String() + ":80",
			"another box":                    infoB.Address + ":8080",
		}
		for what, addr := range blocked {
			if body, code := Fetch(t, ns.d, a, "http://"+addr+"/"); code == 0 {
				t.Errorf("%s (%s) reachable from the box: %q", what, addr, body)
			}
		}
		// Box b's server does run: the host reaches it directly.
		waitDial(t, infoB.Address+":8080")
		dn.WaitFor(t, a, in.MetadataAddr.String()+":80/tcp", 1)
		dn.WaitFor(t, a, fmt.Sprintf("%s:%d/tcp", in.HostAddr, anyPort), 1)
	})

	t.Run("Ports", func(t *testing.T) {
		ns.serve(t, a, "FROM THE BOX")
		url := fmt.Sprintf("http://127.0.0.1:%d/", infoA.Ports[0].HostPort)
		var body string
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			if body = httpGet(url); body != "" {
				break
			}
		}
		if body != "FROM THE BOX" {
			t.Errorf("published port answered %q", body)
		}
		// The same host port again: taken, and nothing is created.
		_, err := d.Create(ctx, sandbox.Spec{BoxID: "net-taken", Image: s.h.Image, CPU: 1, MemoryMB: 256, DiskSizeGB: 1,
			Network: true, Ports: []boxrun.PortMapping{{HostPort: infoA.Ports[0].HostPort, BoxPort: 80}}})
		if !errors.Is(err, boxrun.ErrInvalid) {
			t.Errorf("Create with a taken host port: %v, want ErrInvalid", err)
		}
		for name, ports := range map[string][]boxrun.PortMapping{
			"box port 0":     {{BoxPort: 0}},
			"box port 70000": {{BoxPort: 70000}},
			"duplicate":      {{BoxPort: 80}, {BoxPort: 80}},
		} {
			_, err := d.Create(ctx, sandbox.Spec{BoxID: "net-bad", Image: s.h.Image, Network: true, Ports: ports})
			if !errors.Is(err, boxrun.ErrInvalid) {
				t.Errorf("Create with %s: %v, want ErrInvalid", name, err)
			}
		}
	})

	t.Run("Rules", func(t *testing.T) {
		if err := nd.SetEgress(ctx, a, boxrun.EgressPolicy{Default: "deny", Rules: []boxrun.EgressRule{
			{Action: "allow", Domain: testinet.AllowedName},
			{Action: "deny", CIDR: in.Other.String()},
		}}); err != nil {
			t.Fatalf("SetEgress: %v", err)
		}
		if body, code := Fetch(t, ns.d, a, "http://"+testinet.AllowedName+"/"); code != 0 || body != in.Body {
			t.Errorf("allowed name: %q, exit %d", body, code)
		}
		if _, code := Fetch(t, ns.d, a, "http://"+testinet.DeniedName+"/"); code == 0 {
			t.Errorf("denied name reachable")
		}
		dn.WaitFor(t, a, testinet.DeniedName, 1)
		if _, code := Fetch(t, ns.d, a, "http://"+in.Denied.String()+"/"); code == 0 {
			t.Errorf("an address no allowed name resolved to is reachable")
		}
		if got := dn.WaitFor(t, a, in.Denied.String()+":80/tcp", 1); len(got) == 1 && got[0].Rule != "default deny" {
			t.Errorf("rule of the denial: %q, want default deny", got[0].Rule)
		}
		if _, code := Fetch(t, ns.d, a, "http://"+in.Other.String()+"/"); code == 0 {
			t.Errorf("denied cidr reachable")
		}
		if got := dn.WaitFor(t, a, in.Other.String()+":80/tcp", 1); len(got) == 1 && got[0].Rule != "deny cidr "+in.Other.String()+"/32" {
			t.Errorf("rule of the cidr denial: %q", got[0].Rule)
		}
		// Back to the default: the internet by address again.
		if err := nd.SetEgress(ctx, a, boxrun.EgressPolicy{}); err != nil {
			t.Fatal(err)
		}
		if body, code := Fetch(t, ns.d, a, "http://"+in.Denied.String()+"/"); code != 0 || body != in.Body {
			t.Errorf("after SetEgress back to the default: %q, exit %d", body, code)
		}
		if err := nd.SetEgress(ctx, a, boxrun.EgressPolicy{Default: "open"}); !errors.Is(err, boxrun.ErrInvalid) {
			t.Errorf("SetEgress with a bad default: %v, want ErrInvalid", err)
		}
	})

	t.Run("Remove", func(t *testing.T) {
		for _, h := range []string{a, b} {
			if err := d.Remove(ctx, h); err != nil {
				t.Fatalf("Remove: %v", err)
			}
			AssertNoNetworkLeft(t, h)
		}
	})
}

// netSuite is the state of the Network subtest.
type netSuite struct {
	*suite
	nd sandbox.NetworkDriver
	in *testinet.Internet
	dn *NetDenials
}

// box creates a running networked box (removed at the end of t).
func (ns *netSuite) box(t *testing.T, name string, egress *boxrun.EgressPolicy, ports ...boxrun.PortMapping) string {
	t.Helper()
	var env []string
	if ns.h.Image != nil {
		env = ns.h.Image.Config.Env
	}
	h, err := ns.d.Create(t.Context(), sandbox.Spec{BoxID: "boxruntest-" + name, Image: ns.h.Image, CPU: 1, MemoryMB: 256,
		DiskSizeGB: 1, Env: env, Network: true, Egress: egress, Ports: ports})
	if err != nil {
		t.Fatalf("Create networked box %s: %v", name, err)
	}
	t.Cleanup(func() { ns.d.Remove(context.Background(), h) })
	return h
}

// serve starts ServeHTTP in box h; it is stopped when t ends.
func (ns *netSuite) serve(t *testing.T, h, body string) {
	t.Helper()
	p := ServeHTTP(t, ns.d, h, body)
	t.Cleanup(func() { stopBackground(p) })
}

func httpGet(url string) string {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(b))
}

// waitDial waits until the host can connect to addr.
func waitDial(t *testing.T, addr string) {
	t.Helper()
	var err error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		var c net.Conn
		if c, err = net.DialTimeout("tcp4", addr, 3*time.Second); err == nil {
			c.Close()
			return
		}
	}
	t.Errorf("the host cannot reach %s: %v", addr, err)
}

// AssertNoNetworkLeft checks that no network namespace, host link or
// nftables table of the host names the box with handle h (as boxnet names
// them: the handle, and "bx" plus its first 13 characters for the link).
func AssertNoNetworkLeft(t testing.TB, h string) {
	t.Helper()
	ents, _ := os.ReadDir("/run/netns")
	for _, e := range ents {
		if strings.Contains(e.Name(), h) {
			t.Errorf("network namespace left: %s", e.Name())
		}
	}
	if len(h) >= 13 {
		if _, err := net.InterfaceByName("bx" + h[:13]); err == nil {
			t.Errorf("host link of %s left", h)
		}
	}
	out, _ := exec.Command("nft", "list", "tables").CombinedOutput()
	if strings.Contains(string(out), h) {
		t.Errorf("nftables table of %s left: %s", h, out)
	}
}
