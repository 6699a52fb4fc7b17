package image_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/image"
	"github.com/boxrun/boxrun/image/imagetest"
	"github.com/boxrun/boxrun/internal/testenv"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// testAddress gives the test a non-loopback, non-private address of its
// own: a veth pair whose other end lives in a network namespace the test
// creates, the pair numbered from 198.18.0.0/15 (reserved for tests of
// network devices, and not one of the ranges go-containerregistry reaches
// over plain HTTP by itself). Everything goes when the test ends.
func testAddress(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		skipEnv(t, "needs root to make a network namespace")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		skipEnv(t, "needs ip (apt-get install iproute2)")
	}
	id := os.Getpid() % 100000
	ns, host, peer := fmt.Sprintf("bxreg%d", id), fmt.Sprintf("bxrh%d", id), fmt.Sprintf("bxrp%d", id)
	addr := fmt.Sprintf("198.18.%d.%d", id%250, 1+4*(id/250%60))
	peerAddr := fmt.Sprintf("198.18.%d.%d", id%250, 2+4*(id/250%60))
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	exec.Command("ip", "netns", "del", ns).Run() // a crashed earlier run
	exec.Command("ip", "link", "del", host).Run()
	run("netns", "add", ns)
	t.Cleanup(func() {
		exec.Command("ip", "link", "del", host).Run()
		exec.Command("ip", "netns", "del", ns).Run()
	})
	run("link", "add", host, "type", "veth", "peer", "name", peer)
	run("link", "set", peer, "netns", ns)
	run("addr", "add", addr+"/30", "dev", host)
	run("link", "set", host, "up")
	run("-n", ns, "addr", "add", peerAddr+"/30", "dev", peer)
	run("-n", ns, "link", "set", peer, "up")
	run("-n", ns, "link", "set", "lo", "up")
	return addr
}

func skipEnv(t *testing.T, why string) {
	t.Helper()
	testenv.Skip(t, why)
}

// registryOn serves an in-memory registry on addr, over plain HTTP or TLS
// with a self-signed certificate, and returns its host:port.
func registryOn(t *testing.T, addr string, useTLS bool) string {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	srv.Listener.Close()
	srv.Listener = l
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the failed handshakes are the point
	if useTLS {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return l.Addr().String()
}

func TestInsecureRegistry(t *testing.T) {
	addr := testAddress(t)
	bb := imagetest.BusyboxImage(t)
	for _, useTLS := range []bool{false, true} {
		t.Run(map[bool]string{false: "http", true: "self-signed"}[useTLS], func(t *testing.T) {
			host := registryOn(t, addr, useTLS)
			ref := pushInsecure(t, host+"/corp/tool:1", bb)

			// Not marked insecure: verified HTTPS only, so the pull fails.
			_, err := MustOpen(t).Pull(context.Background(), ref, nil)
			if !errors.Is(err, boxapi.ErrImagePull) {
				t.Fatalf("Pull from an unmarked insecure registry = %v, want IMAGE_PULL_FAILED", err)
			}
			t.Log(err)

			// Marked insecure: works, and only for that host.
			s := MustOpen(t, image.WithInsecureRegistries(host))
			img := MustPull(t, s, ref)
			if img.Digest != digestOf(t, bb) || img.Endpoint != host {
				t.Errorf("got %s from %q, want %s from %s", img.Digest, img.Endpoint, digestOf(t, bb), host)
			}
			// The registry's digest, for drivers whose nodes pull the name
			// themselves; the cache answers with it too.
			if again := MustPull(t, s, ref); img.Remote != digestOf(t, bb) || again.Remote != img.Remote {
				t.Errorf("Remote %q, then %q from the cache; want %s", img.Remote, again.Remote, digestOf(t, bb))
			}
			other := registryOn(t, addr, useTLS)
			oref := pushInsecure(t, other+"/corp/tool:1", bb)
			if _, err := s.Pull(context.Background(), oref, nil); !errors.Is(err, boxapi.ErrImagePull) {
				t.Errorf("Pull from another unmarked host = %v, want IMAGE_PULL_FAILED", err)
			}
		})
	}
}

// pushInsecure uploads img as ref, over plain HTTP or TLS without
// verification.
func pushInsecure(t *testing.T, ref string, img v1.Image) string {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	tr := remote.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	if err := remote.Write(r, img, remote.WithTransport(tr)); err != nil {
		t.Fatal(err)
	}
	return ref
}
