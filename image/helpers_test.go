package image_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/boxrun/boxrun/image"
	"github.com/boxrun/boxrun/sandbox"
	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// MustOpen opens a Store in a temporary directory, hermetic (anonymous
// keychain, no retry delays), closed when the test ends.
func MustOpen(tb testing.TB, opts ...image.Option) *image.Store {
	tb.Helper()
	return MustOpenDir(tb, tb.TempDir(), opts...)
}

func MustOpenDir(tb testing.TB, dir string, opts ...image.Option) *image.Store {
	tb.Helper()
	base := []image.Option{
		image.WithKeychain(authn.NewMultiKeychain()),
		image.WithRemoteOptions(remote.WithRetryBackoff(remote.Backoff{Duration: time.Millisecond, Factor: 1, Steps: 1})),
	}
	s, err := image.Open(dir, append(base, opts...)...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Error(err)
		}
	})
	return s
}

func MustPull(tb testing.TB, s *image.Store, ref string) *sandbox.Image {
	tb.Helper()
	img, err := s.Pull(context.Background(), ref, nil)
	if err != nil {
		tb.Fatalf("Pull(%q): %v", ref, err)
	}
	return img
}

// counter counts registry requests by kind ("GET blob", "HEAD manifest", …)
// and, for blob GETs, by digest.
type counter struct {
	mu    sync.Mutex
	kinds map[string]int
	blobs map[string]int
	delay time.Duration // before answering a blob GET
}

func newCounter() *counter { return &counter{kinds: map[string]int{}, blobs: map[string]int{}} }

func (c *counter) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		kind := "other"
		switch {
		case strings.Contains(r.URL.Path, "/blobs/sha256:"):
			kind = "blob"
		case strings.Contains(r.URL.Path, "/manifests/"):
			kind = "manifest"
		}
		c.mu.Lock()
		c.kinds[r.Method+" "+kind]++
		if kind == "blob" && r.Method == http.MethodGet {
			c.blobs[r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]]++
		}
		d := c.delay
		c.mu.Unlock()
		if kind == "blob" && r.Method == http.MethodGet && d > 0 {
			time.Sleep(d)
		}
		next.ServeHTTP(w, r)
	})
}

func (c *counter) get(kind string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.kinds[kind]
}

// blobGets counts GETs of the given layers' blobs.
func (c *counter) blobGets(tb testing.TB, img v1.Image) int {
	tb.Helper()
	layers, err := img.Layers()
	if err != nil {
		tb.Fatal(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, l := range layers {
		d, _ := l.Digest()
		n += c.blobs[d.String()]
	}
	return n
}

func (c *counter) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.kinds, c.blobs = map[string]int{}, map[string]int{}
}

func readFile(tb testing.TB, root, name string) string {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(root, name))
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

func exists(root, name string) bool {
	_, err := os.Lstat(filepath.Join(root, name))
	return err == nil
}

// entries lists the names in dir (sorted), failing the test on error.
func entries(tb testing.TB, dir string) []string {
	tb.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

func layerDigests(tb testing.TB, img v1.Image) []v1.Hash {
	tb.Helper()
	layers, err := img.Layers()
	if err != nil {
		tb.Fatal(err)
	}
	var out []v1.Hash
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, d)
	}
	return out
}

func digestOf(tb testing.TB, img v1.Image) string {
	tb.Helper()
	d, err := img.Digest()
	if err != nil {
		tb.Fatal(err)
	}
	return d.String()
}

func mustTime(tb testing.TB, s string) time.Time {
	tb.Helper()
	tm, err := time.Parse(time.RFC3339, s)
	if err != nil {
		tb.Fatal(err)
	}
	return tm
}
