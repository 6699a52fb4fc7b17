package image_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/image"
	"github.com/boxrun/boxrun/image/imagetest"
	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// wantPullFailed checks that err is the API's IMAGE_PULL_FAILED error for
// ref, and that its message says why.
func wantPullFailed(tb testing.TB, err error, ref, why string) {
	tb.Helper()
	var be *boxapi.Error
	if !errors.As(err, &be) {
		tb.Fatalf("err = %v (%T), want a *boxapi.Error", err, err)
	}
	if be.Code != boxapi.CodeImagePullFailed || !errors.Is(err, boxapi.ErrImagePull) {
		tb.Errorf("code = %s, want IMAGE_PULL_FAILED", be.Code)
	}
	tb.Logf("message: %s", be.Message)
	prefix := "Failed to pull image '" + ref + "': "
	if !strings.HasPrefix(be.Message, prefix) || !strings.Contains(be.Message, why) {
		tb.Errorf("message = %q, want %q…%q", be.Message, prefix, why)
	}
}

func TestPull_Auth(t *testing.T) {
	host := imagetest.Registry(t, imagetest.WithBasicAuth("alice", "s3cret"))
	ref := imagetest.Push(t, host, "private/app:1",
		imagetest.Image(t, v1.Config{}, imagetest.Layer(t, imagetest.File("secret", 0o600, "42"))),
		remote.WithAuth(&authn.Basic{Username: "alice", Password: "s3cret"}))

	t.Run("OK", func(t *testing.T) {
		s := MustOpen(t, image.WithKeychain(imagetest.Keychain("alice", "s3cret")))
		if got := readFile(t, MustPull(t, s, ref).Rootfs, "secret"); got != "42" {
			t.Errorf("secret = %q", got)
		}
	})
	t.Run("ErrAnonymous", func(t *testing.T) {
		_, err := MustOpen(t).Pull(context.Background(), ref, nil)
		wantPullFailed(t, err, ref, "UNAUTHORIZED: authentication required")
		var te *transport.Error
		if !errors.As(err, &te) || te.StatusCode != http.StatusUnauthorized {
			t.Errorf("cause = %v, want a 401 *transport.Error", err)
		}
	})
	t.Run("ErrWrongPassword", func(t *testing.T) {
		s := MustOpen(t, image.WithKeychain(imagetest.Keychain("alice", "guess")))
		_, err := s.Pull(context.Background(), ref, nil)
		wantPullFailed(t, err, ref, "UNAUTHORIZED")
	})
}

func TestPull_RegistryErrors(t *testing.T) {
	good := imagetest.Image(t, v1.Config{}, imagetest.Layer(t, imagetest.File("f", 0o644, "x")))

	t.Run("ErrNotFound", func(t *testing.T) {
		host := imagetest.Registry(t)
		imagetest.Push(t, host, "exists", good)
		for _, ref := range []string{host + "/missing:latest", host + "/exists:nope"} {
			_, err := MustOpen(t).Pull(context.Background(), ref, nil)
			wantPullFailed(t, err, ref, "_UNKNOWN") // NAME_UNKNOWN, MANIFEST_UNKNOWN
		}
	})
	t.Run("ErrServerError", func(t *testing.T) {
		host := imagetest.Registry(t, imagetest.WithMiddleware(func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if strings.Contains(r.URL.Path, "/manifests/") {
					http.Error(w, "boom", http.StatusInternalServerError)
					return
				}
				next.ServeHTTP(w, r)
			})
		}))
		ref := host + "/broken:latest"
		_, err := MustOpen(t).Pull(context.Background(), ref, nil)
		wantPullFailed(t, err, ref, "500 Internal Server Error")
	})
	t.Run("ErrConnectionRefused", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		host := l.Addr().String()
		l.Close()
		ref := host + "/nobody:home"
		_, err = MustOpen(t).Pull(context.Background(), ref, nil)
		wantPullFailed(t, err, ref, "connection refused")
	})
	t.Run("ErrBadDigest", func(t *testing.T) {
		// The registry serves corrupt layer bytes: the pull fails and
		// nothing reaches the cache.
		host := imagetest.Registry(t, imagetest.WithMiddleware(corruptBlobs(good)))
		ref := imagetest.Push(t, host, "corrupt", good)
		s := MustOpen(t)
		_, err := s.Pull(context.Background(), ref, nil)
		wantPullFailed(t, err, ref, "") // gzip's checksum or the digest catches it
		for _, d := range []string{"blobs/sha256", "layers/sha256", "rootfs/sha256"} {
			if got := entries(t, filepath.Join(s.Dir(), d)); len(got) != 0 {
				t.Errorf("%s holds %q after a bad pull", d, got)
			}
		}
	})
	t.Run("ErrInvalidReference", func(t *testing.T) {
		s := MustOpen(t)
		for _, ref := range []string{"UPPER/case", "/some/local/path", "./layout", "../up", "~/img", "x/./y", "oci:", "a b"} {
			_, err := s.Pull(context.Background(), ref, nil)
			wantPullFailed(t, err, ref, "")
		}
	})
}

// corruptBlobs flips a byte in every GET of img's layer blobs.
func corruptBlobs(img v1.Image) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/sha256:") {
				layers, _ := img.Layers()
				for _, l := range layers {
					if d, _ := l.Digest(); strings.HasSuffix(r.URL.Path, d.String()) {
						next.ServeHTTP(&flipWriter{ResponseWriter: w}, r)
						return
					}
				}
			}
			next.ServeHTTP(w, r)
		})
	}
}

type flipWriter struct {
	http.ResponseWriter
	n int
}

func (f *flipWriter) Write(b []byte) (int, error) {
	c := append([]byte(nil), b...)
	for i := range c {
		if f.n+i == 100 {
			c[i] ^= 0xff
		}
	}
	f.n += len(b)
	return f.ResponseWriter.Write(c)
}

// TestPull_CorruptCache corrupts and truncates cached blobs: the next pull
// that needs them notices by digest and fetches them again.
func TestPull_CorruptCache(t *testing.T) {
	c := newCounter()
	host := imagetest.Registry(t, imagetest.WithMiddleware(c.wrap))
	src := imagetest.Image(t, v1.Config{},
		imagetest.Layer(t, imagetest.File("a", 0o644, strings.Repeat("a", 5000))),
		imagetest.Layer(t, imagetest.File("b", 0o644, strings.Repeat("b", 5000))),
		imagetest.Layer(t, imagetest.File("c", 0o644, "c")))
	ref := imagetest.Push(t, host, "fragile", src)
	s := MustOpen(t)
	MustPull(t, s, ref)

	digests := layerDigests(t, src)
	blob := func(i int) string { return filepath.Join(s.Dir(), "blobs", "sha256", digests[i].Hex) }
	b, err := os.ReadFile(blob(0))
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(blob(0), b, 0o644); err != nil { // corrupt
		t.Fatal(err)
	}
	if err := os.Truncate(blob(1), 10); err != nil { // truncated
		t.Fatal(err)
	}
	// Lose the unpacked layers and rootfs, so the blobs are needed again.
	for _, d := range []string{"layers/sha256", "rootfs/sha256"} {
		os.RemoveAll(filepath.Join(s.Dir(), d))
		os.Mkdir(filepath.Join(s.Dir(), d), 0o755)
	}
	c.reset()

	img := MustPull(t, s, ref)
	for i, want := range []int{1, 1, 0} {
		c.mu.Lock()
		got := c.blobs[digests[i].String()]
		c.mu.Unlock()
		if got != want {
			t.Errorf("layer %d fetched %d times, want %d", i, got, want)
		}
	}
	if got := readFile(t, img.Rootfs, "a"); got != strings.Repeat("a", 5000) {
		t.Errorf("a is wrong (%d bytes)", len(got))
	}
	if got := readFile(t, img.Rootfs, "b"); got != strings.Repeat("b", 5000) {
		t.Errorf("b is wrong (%d bytes)", len(got))
	}
	if fi, err := os.Stat(blob(1)); err != nil || fi.Size() == 10 {
		t.Errorf("truncated blob not replaced: %v %v", fi, err)
	}
}

func TestPull_Cancel(t *testing.T) {
	release := make(chan struct{})
	host := imagetest.Registry(t, imagetest.WithMiddleware(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") && r.Header.Get("X-Test-Push") == "" {
				select {
				case <-release:
				case <-r.Context().Done():
					return
				}
			}
			next.ServeHTTP(w, r)
		})
	}))
	defer close(release)
	ref := imagetest.Push(t, host, "slow", imagetest.Image(t, v1.Config{}, imagetest.Layer(t, imagetest.File("f", 0o644, "x"))))
	s := MustOpen(t)

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := s.Pull(ctx, ref, nil)
	if got := boxapi.ErrorCode(err); got != boxapi.CodeTimeout {
		t.Errorf("code = %s (%v), want TIMEOUT", got, err)
	}

	// Close while a pull waits: the pull ends, Close returns, later calls
	// fail with ErrClosed, and a second Close is fine.
	done := make(chan error, 1)
	go func() {
		_, err := s.Pull(context.Background(), ref, nil)
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, boxapi.ErrClosed) {
			t.Errorf("pull during Close: %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("pull did not end after Close")
	}
	if _, err := s.Pull(context.Background(), ref, nil); !errors.Is(err, boxapi.ErrClosed) {
		t.Errorf("pull after Close: %v, want ErrClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if got := entries(t, filepath.Join(s.Dir(), "tmp")); len(got) != 0 {
		t.Errorf("tmp holds %q after Close", got)
	}
}

// TestPull_Insecure reaches a plain-HTTP registry under a non-loopback
// name (a transport dials the test server whatever the host): refused
// without WithInsecure (HTTPS only), fine with it.
func TestPull_Insecure(t *testing.T) {
	addr := imagetest.Registry(t)
	imagetest.Push(t, addr, "app:1", imagetest.Image(t, v1.Config{}, imagetest.Layer(t, imagetest.File("f", 0o644, "plain"))))
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	ref := "registry.example:5000/app:1"

	_, err := MustOpen(t, image.WithTransport(tr)).Pull(context.Background(), ref, nil)
	wantPullFailed(t, err, ref, "https://registry.example:5000")

	img := MustPull(t, MustOpen(t, image.WithTransport(tr), image.WithInsecure(true)), ref)
	if got := readFile(t, img.Rootfs, "f"); got != "plain" {
		t.Errorf("f = %q", got)
	}
}
