package boxruntest

import (
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/boxrun/boxrun/sandbox"
)

// The network probes of the conformance suite (testNetwork), exported for
// a driver's own network tests.

// Fetch runs busybox wget (at most 10 s) in box h of d and returns the
// body, trimmed, and the exit code (0: fetched).
func Fetch(t testing.TB, d sandbox.Driver, h, url string) (string, int) {
	t.Helper()
	r := Run(t, d, h, sandbox.ProcessSpec{Cmd: []string{"timeout", "10", "wget", "-q", "-O", "-", url}, Dir: "/"}, waitLimit)
	return strings.TrimSpace(r.Stdout), r.Code
}

// ServeHTTP starts busybox httpd on port 8080 of box h of d, serving body
// at /, and returns its process: it runs until it is killed or the box
// goes.
func ServeHTTP(t testing.TB, d sandbox.Driver, h, body string) sandbox.Process {
	t.Helper()
	if r := Run(t, d, h, sandbox.ProcessSpec{Cmd: []string{"sh", "-c", "mkdir -p /tmp/www && echo '" + body + "' > /tmp/www/index.html"}, Dir: "/"}, waitLimit); r.Code != 0 {
		t.Fatalf("cannot write index.html: %+v", r)
	}
	p, err := d.Exec(t.Context(), h, sandbox.ProcessSpec{Cmd: []string{"httpd", "-f", "-p", "8080", "-h", "/tmp/www"}, Dir: "/"})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// HostHTTP serves HTTP ("HOST SERVER\n" for every request) on addr of the
// host until t ends and returns its port: what a box must not reach.
func HostHTTP(t testing.TB, addr string) int {
	t.Helper()
	ln, err := net.Listen("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "HOST SERVER\n")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

// NetDenials records the NetDenial reports of a driver: pass Add to
// sandbox.NetworkDriver.OnNetDenied. Safe for concurrent use.
type NetDenials struct {
	mu  sync.Mutex
	all []sandbox.NetDenial
}

// Add records n.
func (d *NetDenials) Add(n sandbox.NetDenial) {
	d.mu.Lock()
	d.all = append(d.all, n)
	d.mu.Unlock()
}

// Handles returns the box handles of the reports so far, in order (with
// repeats).
func (d *NetDenials) Handles() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]string, 0, len(d.all))
	for _, n := range d.all {
		out = append(out, n.Handle)
	}
	return out
}

// WaitFor waits (up to 10 s) until want reports of box h match dest, then a
// second more to see that no duplicate follows, and fails t unless there
// are exactly want. It returns the matching reports.
func (d *NetDenials) WaitFor(t testing.TB, h, dest string, want int) []sandbox.NetDenial {
	t.Helper()
	var got []sandbox.NetDenial
	deadline := time.Now().Add(10 * time.Second)
	var seenAt time.Time
	for time.Now().Before(deadline) {
		d.mu.Lock()
		got = got[:0]
		for _, n := range d.all {
			if n.Handle == h && n.Destination == dest {
				got = append(got, n)
			}
		}
		d.mu.Unlock()
		if len(got) >= want && seenAt.IsZero() {
			seenAt = time.Now()
		}
		if !seenAt.IsZero() && time.Since(seenAt) > time.Second {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(got) != want {
		d.mu.Lock()
		t.Errorf("denials for %s of box %s: got %d, want %d (all: %+v)", dest, h, len(got), want, d.all)
		d.mu.Unlock()
	}
	return got
}
