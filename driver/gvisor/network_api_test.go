package gvisor_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/client"
	"github.com/boxrun/boxrun/httpapi"
	"github.com/boxrun/boxrun/internal/testinet"
)

// apiEnv is a Manager over a networked gVisor driver, served by the real
// HTTP server on host loopback TCP, on a Unix socket and (with a token) on
// every host address, and a client of the loopback server.
type apiEnv struct {
	m        *boxrun.Manager
	c        *client.Client
	in       *testinet.Internet
	loopPort int    // the server on 127.0.0.1
	anyPort  int    // the server on 0.0.0.0 (with a token)
	socket   string // the server's Unix socket
	image    string
}

func newAPIEnv(t *testing.T) *apiEnv {
	t.Helper()
	d, in, _ := netDriver(t)
	dir := t.TempDir()
	m, err := openManager(dir, d)
	if err != nil {
		t.Fatal(err)
	}
	e := &apiEnv{m: m, in: in, socket: filepath.Join(dir, "api.sock"), image: "dir:" + busyboxRootfs(t)}
	ctx, cancel := context.WithCancel(context.Background())
	var done []chan struct{}
	serve := func(s *httpapi.Server, ln net.Listener) {
		ch := make(chan struct{})
		done = append(done, ch)
		go func() { defer close(ch); s.Serve(ctx, ln) }()
	}
	loop, err := httpapi.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.loopPort = loop.Addr().(*net.TCPAddr).Port
	serve(httpapi.New(m), loop)
	unixLn, err := httpapi.Listen("unix", e.socket)
	if err != nil {
		t.Fatal(err)
	}
	serve(httpapi.New(m), unixLn)
	anyLn, err := httpapi.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	e.anyPort = anyLn.Addr().(*net.TCPAddr).Port
	serve(httpapi.New(m, httpapi.WithToken("secret")), anyLn)
	t.Cleanup(func() {
		cancel()
		for _, ch := range done {
			<-ch
		}
		m.Close()
	})
	if e.c, err = client.New(fmt.Sprintf("http://127.0.0.1:%d", e.loopPort)); err != nil {
		t.Fatal(err)
	}
	return e
}

// boxRun runs sh -c script in a box through the API and returns its stdout
// and exit code.
func (e *apiEnv) boxRun(t *testing.T, box, script string) (string, int) {
	t.Helper()
	var out strings.Builder
	x, err := e.c.Exec(context.Background(), box, boxrun.ExecRequest{Cmd: []string{"sh", "-c", script}, TimeoutMS: 20000}, &out, nil)
	if err != nil {
		t.Fatal(err)
	}
	if x.ExitCode == nil {
		t.Fatalf("exec %q: no exit code: %+v", script, x)
	}
	return strings.TrimSpace(out.String()), *x.ExitCode
}

// TestNetworkTrust: a networked box cannot reach the API that manages it,
// neither on host loopback TCP, nor through its gateway or any other host
// address, nor on the Unix socket (0600).
func TestNetworkTrust(t *testing.T) {
	e := newAPIEnv(t)
	ctx := context.Background()
	box, err := e.c.Create(ctx, boxrun.BoxSpec{Image: e.image, Network: true, Workdir: "/"})
	if err != nil {
		t.Fatal(err)
	}
	info, err := e.c.BoxNetwork(ctx, box.ID)
	if err != nil || info.Gateway == "" {
		t.Fatalf("BoxNetwork: %+v, %v", info, err)
	}
	// The box does have the internet: the API is unreachable because of
	// the policy, not because the box has no network.
	if out, code := e.boxRun(t, box.ID, "timeout 5 wget -q -O - http://"+e.in.Addr.String()+"/"); code != 0 || out != e.in.Body {
		t.Fatalf("box has no internet: %q, %d", out, code)
	}
	for _, url := range []string{
		fmt.Sprintf("http://127.0.0.1:%d/v1/info", e.loopPort),
		fmt.Sprintf("http://localhost:%d/v1/info", e.loopPort),
		fmt.Sprintf("http://%s:%d/v1/info", info.Gateway, e.loopPort),
		fmt.Sprintf("http://%s:%d/v1/info?access_token=secret", info.Gateway, e.anyPort),
		fmt.Sprintf("http://%s:%d/v1/info?access_token=secret", e.in.HostAddr, e.anyPort),
	} {
		if out, code := e.boxRun(t, box.ID, "timeout 5 wget -q -O - '"+url+"'"); code == 0 || strings.Contains(out, "max_cpu") {
			t.Errorf("box reached the API at %s: %q", url, out)
		}
	}
	// The server's socket is not in the box, and the box cannot open one
	// by that path.
	if out, code := e.boxRun(t, box.ID, "printf 'GET /v1/info HTTP/1.0\\r\\n\\r\\n' | timeout 5 nc local:"+e.socket+"; ls -l "+e.socket); code == 0 || strings.Contains(out, "max_cpu") {
		t.Errorf("box reached the Unix socket: %q", out)
	}
	st, err := os.Stat(e.socket)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("socket mode: %v, %v", st.Mode(), err)
	}
	// And the host side can still use both.
	if _, err := e.c.Info(ctx); err != nil {
		t.Error(err)
	}
	uc, _ := client.New("unix://" + e.socket)
	if _, err := uc.Info(ctx); err != nil {
		t.Error(err)
	}
}

// TestNetworkAPI: ports and egress through the API extensions, net.denied
// events on /v1/events, a taken port and bad input as VALIDATION_ERROR with
// no box left.
func TestNetworkAPI(t *testing.T) {
	e := newAPIEnv(t)
	ctx := context.Background()
	sub, err := e.c.Subscribe(ctx, boxrun.EventFilter{Types: []boxrun.EventType{boxrun.EventNetDenied}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	box, err := e.c.Create(ctx, boxrun.BoxSpec{Image: e.image, Network: true, Workdir: "/",
		Ports:  []boxrun.PortMapping{{BoxPort: 8080}},
		Egress: &boxrun.EgressPolicy{Default: "deny", Rules: []boxrun.EgressRule{{Action: "allow", Domain: testinet.AllowedName}}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(box.Volumes) != 0 || box.Network != true {
		t.Errorf("box: %+v", box)
	}
	info, err := e.c.BoxNetwork(ctx, box.ID)
	if err != nil || len(info.Ports) != 1 || info.Ports[0].HostPort == 0 || info.Egress.Default != "deny" {
		t.Fatalf("BoxNetwork: %+v, %v", info, err)
	}
	if out, code := e.boxRun(t, box.ID, "timeout 5 wget -q -O - http://"+testinet.AllowedName+"/"); code != 0 || out != e.in.Body {
		t.Errorf("allowed name: %q, %d", out, code)
	}
	if _, code := e.boxRun(t, box.ID, "timeout 5 wget -q -O - http://"+e.in.Other.String()+"/"); code == 0 {
		t.Errorf("unpinned address reachable")
	}
	want := e.in.Other.String() + ":80/tcp"
	var got []boxrun.Event
	timeout := time.After(5 * time.Second)
collect:
	for {
		select {
		case ev, ok := <-sub.C():
			if !ok {
				break collect
			}
			got = append(got, ev)
		case <-timeout:
			break collect
		}
	}
	n := 0
	for _, ev := range got {
		if ev.BoxID == box.ID && ev.Net != nil && ev.Net.Destination == want && ev.Net.Rule == "default deny" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("net.denied events for %s: %d, want 1 (all: %+v)", want, n, got)
	}

	// Replace the policy through the API.
	if _, err := e.c.SetBoxEgress(ctx, box.ID, boxrun.EgressPolicy{Rules: []boxrun.EgressRule{{Action: "deny", CIDR: "0.0.0.0/0"}}}); err != nil {
		t.Fatal(err)
	}
	if _, code := e.boxRun(t, box.ID, "timeout 5 wget -q -O - http://"+testinet.AllowedName+"/"); code == 0 {
		t.Errorf("reachable after deny 0.0.0.0/0")
	}

	// A taken host port: VALIDATION_ERROR and no box.
	before, _ := e.c.List(ctx, boxrun.BoxFilter{})
	_, err = e.c.Create(ctx, boxrun.BoxSpec{Image: e.image, Network: true, Workdir: "/",
		Ports: []boxrun.PortMapping{{HostPort: info.Ports[0].HostPort, BoxPort: 80}}})
	if !errors.Is(err, boxrun.ErrInvalid) || !strings.Contains(err.Error(), "in use") {
		t.Errorf("taken port: %v", err)
	}
	after, _ := e.c.List(ctx, boxrun.BoxFilter{})
	if len(after) != len(before) {
		t.Errorf("a box was left: %d boxes before, %d after", len(before), len(after))
	}
	for name, spec := range map[string]boxrun.BoxSpec{
		"port 70000":     {Network: true, Ports: []boxrun.PortMapping{{BoxPort: 70000}}},
		"port 0":         {Network: true, Ports: []boxrun.PortMapping{{BoxPort: 0}}},
		"duplicate port": {Network: true, Ports: []boxrun.PortMapping{{BoxPort: 80}, {BoxPort: 80, HostPort: 9}}},
		"bad cidr":       {Network: true, Egress: &boxrun.EgressPolicy{Rules: []boxrun.EgressRule{{Action: "deny", CIDR: "300.1.1.1/8"}}}},
		"bad domain":     {Network: true, Egress: &boxrun.EgressPolicy{Rules: []boxrun.EgressRule{{Action: "deny", Domain: "-x-.test"}}}},
		"no network":     {Ports: []boxrun.PortMapping{{BoxPort: 80}}},
	} {
		spec.Image = e.image
		_, err := e.c.Create(ctx, spec)
		var apiErr *boxrun.Error
		if !errors.As(err, &apiErr) || apiErr.Code != boxrun.CodeValidationError {
			t.Errorf("%s: %v, want VALIDATION_ERROR", name, err)
		}
	}
	if _, err := e.c.SetBoxEgress(ctx, box.ID, boxrun.EgressPolicy{Default: "nope"}); !errors.Is(err, boxrun.ErrInvalid) {
		t.Errorf("bad egress replace: %v", err)
	}
	if all, _ := e.c.List(ctx, boxrun.BoxFilter{}); len(all) != len(before) {
		t.Errorf("bad input left boxes: %d", len(all))
	}
	if err := e.c.Remove(ctx, box.ID, true); err != nil {
		t.Fatal(err)
	}
}
