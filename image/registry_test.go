package image_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/image"
	"github.com/boxrun/boxrun/image/imagetest"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// loopbackOnly is a registry transport that refuses every host that is not
// on loopback, recording what was refused: the test's stand-in for a
// machine without internet, which must never send traffic off the host.
type loopbackOnly struct {
	mu      sync.Mutex
	refused []string
}

func (l *loopbackOnly) RoundTrip(r *http.Request) (*http.Response, error) {
	host := r.URL.Hostname()
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		l.mu.Lock()
		l.refused = append(l.refused, r.URL.Host)
		l.mu.Unlock()
		return nil, fmt.Errorf("test: %s unreachable (no network)", r.URL.Host)
	}
	return remote.DefaultTransport.RoundTrip(r)
}

func (l *loopbackOnly) hosts() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.refused...)
}

// failing starts a registry that fails every request, counting them.
func failing(t *testing.T) (host string, hits func() int) {
	var mu sync.Mutex
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		mu.Unlock()
		http.Error(w, `{"errors":[{"code":"UNAVAILABLE","message":"test registry fails everything"}]}`, http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), func() int {
		mu.Lock()
		defer mu.Unlock()
		return n
	}
}

func TestMirror_DockerHubThroughMirror(t *testing.T) {
	mirror := imagetest.Registry(t)
	bb := imagetest.BusyboxImage(t)
	imagetest.Push(t, mirror, "library/python:latest", bb)
	imagetest.Push(t, mirror, "library/python:3.12-slim", bb)
	net := &loopbackOnly{}
	s := MustOpen(t, image.WithTransport(net), image.WithRegistryMirrors("docker.io", true, "http://"+mirror))

	img := MustPull(t, s, "python")
	if img.Digest != digestOf(t, bb) {
		t.Errorf("Digest = %s, want %s", img.Digest, digestOf(t, bb))
	}
	if want := "http://" + mirror; img.Endpoint != want {
		t.Errorf("Endpoint = %q, want %q", img.Endpoint, want)
	}
	MustPull(t, s, "python:3.12-slim")
	if h := net.hosts(); len(h) != 0 {
		t.Errorf("the origin was contacted: %q", h)
	}
	list, err := s.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, info := range list {
		if info.Endpoint != "http://"+mirror {
			t.Errorf("List: %s endpoint %q, want the mirror", info.Ref, info.Endpoint)
		}
	}

	// An image the mirror lacks goes on to the origin, unreachable here:
	// the error names both.
	_, err = s.Pull(context.Background(), "ruby", nil)
	if !errors.Is(err, boxapi.ErrImagePull) {
		t.Fatalf("Pull(ruby) = %v, want IMAGE_PULL_FAILED", err)
	}
	for _, want := range []string{"mirror http://" + mirror, "registry index.docker.io", "unreachable"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestMirror_PathPrefix(t *testing.T) {
	mirror := imagetest.Registry(t)
	bb := imagetest.BusyboxImage(t)
	imagetest.Push(t, mirror, "hub-cache/library/python:latest", bb)
	s := MustOpen(t, image.WithTransport(&loopbackOnly{}),
		image.WithRegistryMirrors("docker.io", false, "http://"+mirror+"/hub-cache/"))
	if img := MustPull(t, s, "python"); img.Digest != digestOf(t, bb) {
		t.Errorf("Digest = %s, want %s", img.Digest, digestOf(t, bb))
	}
}

func TestMirror_DownFallsBackToOrigin(t *testing.T) {
	origin := imagetest.Registry(t)
	bb := imagetest.BusyboxImage(t)
	ref := imagetest.Push(t, origin, "library/python:latest", bb)
	down, hits := failing(t)
	dead := httptest.NewServer(http.NotFoundHandler())
	deadHost := strings.TrimPrefix(dead.URL, "http://")
	dead.Close() // nothing listens there any more

	s := MustOpen(t, image.WithTransport(&loopbackOnly{}),
		image.WithRegistryMirrors(origin, true, "http://"+deadHost, "http://"+down))
	img := MustPull(t, s, ref)
	if img.Endpoint != origin {
		t.Errorf("Endpoint = %q, want the origin %q", img.Endpoint, origin)
	}
	if hits() == 0 {
		t.Error("the failing mirror was not tried")
	}

	// Mirrors only: no fallback, and the error says which mirror failed how.
	s2 := MustOpen(t, image.WithTransport(&loopbackOnly{}),
		image.WithRegistryMirrors(origin, false, "http://"+down))
	_, err := s2.Pull(context.Background(), ref, nil)
	if !errors.Is(err, boxapi.ErrImagePull) || !strings.Contains(err.Error(), "mirror http://"+down) {
		t.Fatalf("Pull with mirrors only = %v, want IMAGE_PULL_FAILED naming the mirror", err)
	}
	if list, _ := s2.List(context.Background()); len(list) != 0 {
		t.Errorf("failed pull left %v in the store", list)
	}
}

func TestRegistry_BadConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		opt  image.Option
	}{
		{"ftp scheme", image.WithRegistryMirrors("docker.io", true, "ftp://mirror.example")},
		{"no scheme", image.WithRegistryMirrors("docker.io", true, "mirror.example:5000")},
		{"no host", image.WithRegistryMirrors("docker.io", true, "http://")},
		{"credentials", image.WithRegistryMirrors("docker.io", true, "https://u:p@mirror.example")},
		{"query", image.WithRegistryMirrors("docker.io", true, "https://mirror.example/?x=1")},
		{"bad host", image.WithRegistryMirrors("docker.io", true, "https://bad_host!/")},
		{"bad registry", image.WithRegistryMirrors("not a host", true, "https://mirror.example")},
		{"only without mirrors", image.WithRegistry("docker.io", image.RegistryConfig{MirrorsOnly: true})},
		{"bad insecure host", image.WithInsecureRegistries("http://x")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "images")
			s, err := image.Open(dir, tc.opt)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if _, serr := os.Stat(dir); !errors.Is(serr, os.ErrNotExist) {
				t.Errorf("Open failed (%v) but made %s", err, dir)
			}
			t.Log(err)
		})
	}
}

func TestPullPolicy_Never(t *testing.T) {
	host, hits := failing(t)
	s := MustOpen(t, image.WithTransport(&loopbackOnly{}))
	ctx := context.Background()
	_, err := s.PullWith(ctx, host+"/library/python:3.12", image.PullOptions{Policy: image.PullNever}, nil)
	if !errors.Is(err, boxapi.ErrImagePull) || !errors.Is(err, image.ErrNotCached) {
		t.Fatalf("PullNever of a missing image = %v, want IMAGE_PULL_FAILED wrapping ErrNotCached", err)
	}
	if !strings.Contains(err.Error(), "images load") {
		t.Errorf("error %q does not name `images load`", err)
	}
	if n := hits(); n != 0 {
		t.Errorf("the registry got %d requests", n)
	}

	// Cached: never and missing use it without asking the registry.
	origin := imagetest.Registry(t)
	ref := imagetest.Push(t, origin, "x/y:1", imagetest.BusyboxImage(t))
	MustPull(t, s, ref)
	for _, p := range []image.PullPolicy{image.PullNever, image.PullMissing} {
		if _, err := s.PullWith(ctx, ref, image.PullOptions{Policy: p}, nil); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	if _, err := s.PullWith(ctx, ref, image.PullOptions{Policy: "sometimes"}, nil); !errors.Is(err, boxapi.ErrImagePull) {
		t.Errorf("unknown policy: %v", err)
	}
}
