package gvisor_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/boxruntest"
	"github.com/boxrun/boxrun/driver/gvisor"
	"github.com/boxrun/boxrun/internal/crashtest"
	"github.com/boxrun/boxrun/internal/testinet"
	"github.com/boxrun/boxrun/sandbox"
)

// netCrashEnv tells a re-executed test binary to act as TestNetCrashChild.
const netCrashEnv = "BOXRUN_GVISOR_NETCRASH_DIR"

// TestNetCrashChild is not a test: TestNetworkCrash starts it and SIGKILLs
// it. It creates two networked boxes (one with a policy and a published
// port), reports their handles and waits.
func TestNetCrashChild(t *testing.T) {
	dir := os.Getenv(netCrashEnv)
	if dir == "" {
		t.Skip("helper process for TestNetworkCrash")
	}
	d, err := gvisor.New(gvisor.Config{Dir: dir, DNS: []string{os.Getenv(netCrashEnv + "_DNS")}})
	if err != nil {
		t.Fatal(err)
	}
	img := &sandbox.Image{Rootfs: os.Getenv(netCrashEnv + "_ROOTFS")}
	a, err := d.Create(context.Background(), sandbox.Spec{BoxID: "a", Image: img, Network: true,
		Ports:  []boxapi.PortMapping{{BoxPort: 8080}},
		Egress: &boxapi.EgressPolicy{Default: "deny", Rules: []boxapi.EgressRule{{Action: "allow", Domain: testinet.AllowedName}}}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := d.Create(context.Background(), sandbox.Spec{BoxID: "b", Image: img, Network: true})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("READY", a, b)
	time.Sleep(time.Hour)
}

// TestNetworkCrash: SIGKILL the owner of running networked boxes; a new
// driver's Prune removes every namespace, link and table of the box that
// is not kept, and the kept box has working, policed networking again
// (resolver, policy, published port, denial reports).
func TestNetworkCrash(t *testing.T) {
	d0, in, _ := netDriver(t) // cleanup checks; its dir is not used
	d0.Close()
	dir := filepath.Join(t.TempDir(), "gvisor")
	child := crashtest.Start(t, "TestNetCrashChild", []string{netCrashEnv + "=" + dir, netCrashEnv + "_ROOTFS=" + busyboxRootfs(t), netCrashEnv + "_DNS=" + in.DNS}, "-test.v")
	f := child.MustAwait(t, "the child", "READY", 3, 10*time.Minute)
	child.Kill()
	a, b := f[1], f[2]

	d, err := gvisor.New(gvisor.Config{Dir: dir, DNS: []string{in.DNS}})
	if err != nil {
		t.Fatal(err)
	}
	dn := &boxruntest.NetDenials{}
	d.OnNetDenied(dn.Add)
	t.Cleanup(func() {
		d.Prune(context.Background(), nil)
		d.Close()
		assertNothingLeft(t, dir)
		boxruntest.AssertNoNetworkLeft(t, a)
		boxruntest.AssertNoNetworkLeft(t, b)
	})
	if err := d.Prune(context.Background(), []string{a}); err != nil {
		t.Fatal(err)
	}
	boxruntest.AssertNoNetworkLeft(t, b)

	if body, code := boxruntest.Fetch(t, d, a, "http://"+testinet.AllowedName+"/"); code != 0 || body != in.Body {
		t.Errorf("allowed name after restart: %q, exit %d", body, code)
	}
	if _, code := boxruntest.Fetch(t, d, a, "http://"+in.Other.String()+"/"); code == 0 {
		t.Errorf("policy lost after restart: unpinned address reachable")
	}
	dn.WaitFor(t, a, in.Other.String()+":80/tcp", 1)
	info, err := d.NetInfo(context.Background(), a)
	if err != nil || len(info.Ports) != 1 {
		t.Fatalf("NetInfo: %+v, %v", info, err)
	}
	boxruntest.ServeHTTP(t, d, a, "STILL HERE")
	url := fmt.Sprintf("http://127.0.0.1:%d/", info.Ports[0].HostPort)
	var body []byte
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if resp, err := http.Get(url); err == nil {
			body, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			break
		}
	}
	if strings.TrimSpace(string(body)) != "STILL HERE" {
		t.Errorf("published port after restart answered %q", body)
	}
}
