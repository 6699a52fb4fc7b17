package gvisor_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/boxruntest"
	"github.com/boxrun/boxrun/driver/gvisor"
	"github.com/boxrun/boxrun/internal/testenv"
	"github.com/boxrun/boxrun/internal/testinet"
	"github.com/boxrun/boxrun/sandbox"
)

// netDriver is a driver whose boxes resolve through the test internet's DNS
// server, with its denials recorded. Cleanup checks that nothing of the
// driver (network included) is left.
func netDriver(t *testing.T) (*gvisor.Driver, *testinet.Internet, *boxruntest.NetDenials) {
	t.Helper()
	in := testinet.New(t)
	dir := filepath.Join(t.TempDir(), "gvisor")
	d, err := gvisor.New(gvisor.Config{Dir: dir, DNS: []string{in.DNS}})
	if errors.Is(err, gvisor.ErrUnsupported) {
		testenv.Skip(t, fmt.Sprintf("gvisor driver unsupported here: %v", err))
	}
	if err != nil {
		t.Fatal(err)
	}
	dn := &boxruntest.NetDenials{}
	d.OnNetDenied(dn.Add)
	var handles []string
	t.Cleanup(func() {
		handles = dn.Handles()
		d.Close()
		d2, err := gvisor.New(gvisor.Config{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		if err := d2.Prune(context.Background(), nil); err != nil {
			t.Errorf("prune: %v", err)
		}
		d2.Close()
		assertNothingLeft(t, dir)
		for _, h := range handles {
			boxruntest.AssertNoNetworkLeft(t, h)
		}
	})
	return d, in, dn
}

func netBox(t *testing.T, d *gvisor.Driver, egress *boxrun.EgressPolicy, ports ...boxrun.PortMapping) string {
	t.Helper()
	return create(t, d, sandbox.Spec{BoxID: "net", Image: boxruntest.BusyboxImage(t), Network: true, Egress: egress, Ports: ports})
}

// TestNetworkReachAndProtections: a networked box reaches the test internet
// by address and by name, and nothing of the host, link-local or another
// box; each attempt is a real connect with a short timeout.
func TestNetworkReachAndProtections(t *testing.T) {
	d, in, dn := netDriver(t)
	loopPort := boxruntest.HostHTTP(t, "127.0.0.1:0")
	anyPort := boxruntest.HostHTTP(t, "0.0.0.0:0")
	a := netBox(t, d, nil)
	b := netBox(t, d, nil)
	defer d.Remove(context.Background(), a)
	defer d.Remove(context.Background(), b)
	infoA, err := d.NetInfo(context.Background(), a)
	if err != nil || infoA.Address == "" || infoA.Gateway == "" {
		t.Fatalf("NetInfo: %+v, %v", infoA, err)
	}
	infoB, _ := d.NetInfo(context.Background(), b)
	// A server in box b.
	boxruntest.ServeHTTP(t, d, b, "BOX B")
	time.Sleep(300 * time.Millisecond)

	if body, code := boxruntest.Fetch(t, d, a, "http://"+in.Addr.String()+"/"); code != 0 || body != in.Body {
		t.Errorf("internet by address: %q, exit %d", body, code)
	}
	if body, code := boxruntest.Fetch(t, d, a, "http://"+testinet.AllowedName+"/"); code != 0 || body != in.Body {
		t.Errorf("internet by name: %q, exit %d", body, code)
	}
	blocked := map[string]string{
		"host loopback (the box's own)":  fmt.Sprintf("127.0.0.1:%d", loopPort),
		"host loopback port via gateway": fmt.Sprintf("%s:%d", infoA.Gateway, loopPort),
		"host, gateway address":          fmt.Sprintf("%s:%d", infoA.Gateway, anyPort),
		"host, another address":          fmt.Sprintf("%s:%d", in.HostAddr, anyPort),
		"link-local metadata":            in.MetadataAddr.String() + ":80",
		"another box":                    infoB.Address + ":8080",
	}
	for what, addr := range blocked {
		if body, code := boxruntest.Fetch(t, d, a, "http://"+addr+"/"); code == 0 {
			t.Errorf("%s (%s) reachable from the box: %q", what, addr, body)
		}
	}
	// The box b server does run: the host reaches it directly.
	if c, err := net.DialTimeout("tcp4", infoB.Address+":8080", 3*time.Second); err != nil {
		t.Errorf("box b server not running (host dial): %v", err)
	} else {
		c.Close()
	}
	dn.WaitFor(t, a, in.MetadataAddr.String()+":80/tcp", 1)
	dn.WaitFor(t, a, fmt.Sprintf("%s:%d/tcp", in.HostAddr, anyPort), 1)
}

// TestNetworkRules: domain and CIDR rules, replaced on a running box, and
// one net.denied report per denial.
func TestNetworkRules(t *testing.T) {
	d, in, dn := netDriver(t)
	h := netBox(t, d, &boxrun.EgressPolicy{Default: "deny", Rules: []boxrun.EgressRule{
		{Action: "allow", Domain: testinet.AllowedName},
		{Action: "deny", CIDR: in.Other.String() + "/32"},
	}})
	defer d.Remove(context.Background(), h)
	if body, code := boxruntest.Fetch(t, d, h, "http://"+testinet.AllowedName+"/"); code != 0 || body != in.Body {
		t.Errorf("allowed name: %q, exit %d", body, code)
	}
	if _, code := boxruntest.Fetch(t, d, h, "http://"+testinet.DeniedName+"/"); code == 0 {
		t.Errorf("denied name reachable")
	}
	dn.WaitFor(t, h, testinet.DeniedName, 1)
	// An address that no allowed name resolved to.
	if _, code := boxruntest.Fetch(t, d, h, "http://"+in.Denied.String()+"/"); code == 0 {
		t.Errorf("unpinned address reachable")
	}
	got := dn.WaitFor(t, h, in.Denied.String()+":80/tcp", 1)
	if len(got) == 1 && got[0].Rule != "default deny" {
		t.Errorf("rule of the denial: %q", got[0].Rule)
	}
	if _, code := boxruntest.Fetch(t, d, h, "http://"+in.Other.String()+"/"); code == 0 {
		t.Errorf("denied cidr reachable")
	}
	got = dn.WaitFor(t, h, in.Other.String()+":80/tcp", 1)
	if len(got) == 1 && got[0].Rule != "deny cidr "+in.Other.String()+"/32" {
		t.Errorf("rule of the cidr denial: %q", got[0].Rule)
	}

	// Replace the rules on the running box: now denied.test by name and
	// the other address by CIDR are allowed, allowed.test is denied.
	if err := d.SetEgress(context.Background(), h, boxrun.EgressPolicy{Default: "deny", Rules: []boxrun.EgressRule{
		{Action: "deny", Domain: testinet.AllowedName},
		{Action: "allow", Domain: testinet.DeniedName},
		{Action: "allow", CIDR: in.Other.String()},
	}}); err != nil {
		t.Fatal(err)
	}
	if body, code := boxruntest.Fetch(t, d, h, "http://"+testinet.DeniedName+"/"); code != 0 || body != in.Body {
		t.Errorf("newly allowed name: %q, exit %d", body, code)
	}
	if body, code := boxruntest.Fetch(t, d, h, "http://"+in.Other.String()+"/"); code != 0 || body != in.Body {
		t.Errorf("newly allowed cidr: %q, exit %d", body, code)
	}
	if _, code := boxruntest.Fetch(t, d, h, "http://"+testinet.AllowedName+"/"); code == 0 {
		t.Errorf("newly denied name reachable")
	}
	dn.WaitFor(t, h, testinet.AllowedName, 1)
	// The address allowed.test pinned before is not pinned any more.
	if _, code := boxruntest.Fetch(t, d, h, "http://"+in.Allowed.String()+"/"); code == 0 {
		t.Errorf("address pinned by the old rules still reachable")
	}
	info, err := d.NetInfo(context.Background(), h)
	if err != nil || len(info.Egress.Rules) != 3 || info.Egress.Rules[2].CIDR != in.Other.String()+"/32" {
		t.Errorf("NetInfo after SetEgress: %+v, %v", info, err)
	}
}

// TestNetworkPorts: a published port answers on host loopback; a taken
// port fails Create with ErrInvalid and leaves nothing.
func TestNetworkPorts(t *testing.T) {
	d, _, _ := netDriver(t)
	h := netBox(t, d, nil, boxrun.PortMapping{BoxPort: 8080})
	defer d.Remove(context.Background(), h)
	info, err := d.NetInfo(context.Background(), h)
	if err != nil || len(info.Ports) != 1 || info.Ports[0].HostPort == 0 || info.Ports[0].HostIP != "127.0.0.1" {
		t.Fatalf("NetInfo: %+v, %v", info, err)
	}
	boxruntest.ServeHTTP(t, d, h, "FROM THE BOX")
	url := fmt.Sprintf("http://127.0.0.1:%d/", info.Ports[0].HostPort)
	var body []byte
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get(url)
		if err == nil {
			body, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			break
		}
	}
	if strings.TrimSpace(string(body)) != "FROM THE BOX" {
		t.Errorf("published port answered %q", body)
	}

	// The same host port again: taken.
	_, err = d.Create(context.Background(), sandbox.Spec{BoxID: "taken", Image: boxruntest.BusyboxImage(t), Network: true,
		Ports: []boxrun.PortMapping{{HostPort: info.Ports[0].HostPort, BoxPort: 80}}})
	if !errors.Is(err, boxrun.ErrInvalid) || !strings.Contains(err.Error(), "in use") {
		t.Errorf("taken port: %v", err)
	}
}

// TestNetworkBadInput: bad rules and ports are ErrInvalid and create
// nothing.
func TestNetworkBadInput(t *testing.T) {
	d, _, _ := netDriver(t)
	for name, spec := range map[string]sandbox.Spec{
		"bad cidr":       {Network: true, Egress: &boxrun.EgressPolicy{Rules: []boxrun.EgressRule{{Action: "allow", CIDR: "10.0.0.300/8"}}}},
		"ipv6 cidr":      {Network: true, Egress: &boxrun.EgressPolicy{Rules: []boxrun.EgressRule{{Action: "allow", CIDR: "::/0"}}}},
		"bad domain":     {Network: true, Egress: &boxrun.EgressPolicy{Rules: []boxrun.EgressRule{{Action: "deny", Domain: "bad..name"}}}},
		"bad action":     {Network: true, Egress: &boxrun.EgressPolicy{Rules: []boxrun.EgressRule{{Action: "maybe", Domain: "a.test"}}}},
		"both":           {Network: true, Egress: &boxrun.EgressPolicy{Rules: []boxrun.EgressRule{{Action: "allow", Domain: "a.test", CIDR: "1.2.3.4"}}}},
		"bad default":    {Network: true, Egress: &boxrun.EgressPolicy{Default: "open"}},
		"port 0":         {Network: true, Ports: []boxrun.PortMapping{{BoxPort: 0}}},
		"port 70000":     {Network: true, Ports: []boxrun.PortMapping{{BoxPort: 70000}}},
		"host port 7e4":  {Network: true, Ports: []boxrun.PortMapping{{BoxPort: 80, HostPort: 70000}}},
		"duplicate port": {Network: true, Ports: []boxrun.PortMapping{{BoxPort: 80}, {BoxPort: 80}}},
		"bad host ip":    {Network: true, Ports: []boxrun.PortMapping{{BoxPort: 80, HostIP: "localhost"}}},
		"no network":     {Ports: []boxrun.PortMapping{{BoxPort: 80}}},
	} {
		if _, err := d.Create(context.Background(), spec); !errors.Is(err, boxrun.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
}
