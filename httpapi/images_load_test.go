package httpapi_test

import (
	"bytes"
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
	"time"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/boxruntest"
	"github.com/boxrun/boxrun/client"
	"github.com/boxrun/boxrun/httpapi"
	"github.com/boxrun/boxrun/image"
	"github.com/boxrun/boxrun/image/imagetest"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// offlineStore opens a real image store that can reach no registry:
// docker.io goes only to a mirror failing (and counting) every request,
// and requests to any other host than loopback fail.
func offlineStore(t *testing.T, dir string) (*image.Store, func() int) {
	t.Helper()
	var mu sync.Mutex
	hits := 0
	fail := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits++
		mu.Unlock()
		http.Error(w, "registry down", http.StatusServiceUnavailable)
	}))
	t.Cleanup(fail.Close)
	tr := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if ip := net.ParseIP(r.URL.Hostname()); ip == nil || !ip.IsLoopback() {
			mu.Lock()
			hits++
			mu.Unlock()
			return nil, fmt.Errorf("test: no network to %s", r.URL.Host)
		}
		return remote.DefaultTransport.RoundTrip(r)
	})
	s, err := image.Open(dir, image.WithTransport(tr), image.WithRegistryMirrors("docker.io", false, fail.URL))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, func() int {
		mu.Lock()
		defer mu.Unlock()
		return hits
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// markedBusybox is busybox with /marker saying text.
func markedBusybox(t *testing.T, text string) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(imagetest.BusyboxImage(t), imagetest.Layer(t, imagetest.File("marker", 0o644, text)))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func archiveOf(t *testing.T, ref string, img v1.Image) []byte {
	t.Helper()
	p := filepath.Join(t.TempDir(), "a.tar")
	imagetest.WriteDockerArchive(t, p, ref, img)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Load, tag and save through the API and the client, and create boxes from
// the names with no registry reachable.
func TestImagesLoadTagSave(t *testing.T) {
	dir := t.TempDir()
	store, hits := offlineStore(t, filepath.Join(dir, "images"))
	mgr := boxruntest.NewManager(t, boxrun.WithImages(store))
	srv := httptest.NewServer(httpapi.New(mgr))
	t.Cleanup(srv.Close)
	c, err := client.New(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, mgr: mgr, url: srv.URL}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	img := markedBusybox(t, "loaded")
	arc := archiveOf(t, "python:3.12-slim", img)
	sub, err := c.Subscribe(ctx, boxrun.EventFilter{Types: []boxrun.EventType{boxrun.EventImagePull}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	infos, err := c.LoadImages(ctx, bytes.NewReader(arc), boxrun.LoadImagesOptions{Tags: []string{"python"}, Size: int64(len(arc))})
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := img.ConfigName()
	if len(infos) != 2 || infos[0].Ref != "python:3.12-slim" || infos[1].Ref != "python" || infos[0].Digest != cfg.String() {
		t.Fatalf("LoadImages = %+v", infos)
	}
	deadline := time.After(10 * time.Second)
	for done := false; !done; {
		select {
		case ev := <-sub.C():
			if ev.Pull != nil && ev.Pull.Layer == image.ArchiveLayer && ev.Pull.Done == int64(len(arc)) && ev.Pull.Total == int64(len(arc)) {
				done = true
			}
		case <-deadline:
			t.Fatal("no image.pull event for the whole archive")
		}
	}

	if _, err := c.TagImage(ctx, "python:3.12-slim", "corp.example/ml/python:3.12"); err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{
		`{"image":"python"}`,
		`{"image":"python:3.12-slim","pull":"never"}`,
		`{"image":"corp.example/ml/python:3.12","pull":"missing"}`,
	} {
		b := e.createBox(body)
		if got, err := mgr.Get(ctx, b.ID); err != nil || got.Status != boxrun.StatusRunning {
			t.Errorf("%s: %+v, %v", body, got, err)
		}
	}

	// Bad input: each a clear error, nothing created.
	for _, tc := range []struct{ method, path, body, code string }{
		{"POST", "/v1/boxes", `{"image":"ghost:1","pull":"never"}`, "IMAGE_PULL_FAILED"},
		{"POST", "/v1/boxes", `{"image":"python","pull":"sometimes"}`, "VALIDATION_ERROR"},
		{"POST", "/v1/images:tag", `{"source":"ghost:1","target":"x:1"}`, "VALIDATION_ERROR"},
		{"POST", "/v1/images:tag", `{"source":"python","target":"Not A Name"}`, "VALIDATION_ERROR"},
		{"POST", "/v1/images:tag", `{"source":"python"}`, "VALIDATION_ERROR"},
		{"GET", "/v1/images:save?ref=python&ref=ghost:1", ``, "VALIDATION_ERROR"},
		{"GET", "/v1/images:save", ``, "VALIDATION_ERROR"},
	} {
		r := e.do(tc.method, tc.path, tc.body)
		if r.status/100 != 4 || jsonOf[map[string]any](t, r)["code"] != tc.code {
			t.Errorf("%s %s %s: %d %s, want 4xx %s", tc.method, tc.path, tc.body, r.status, r.body, tc.code)
		}
		if strings.Contains(tc.body, "ghost") && strings.HasPrefix(tc.path, "/v1/boxes") && !strings.Contains(string(r.body), "images load") {
			t.Errorf("pull never error does not name `images load`: %s", r.body)
		}
	}
	if _, err := c.LoadImages(ctx, strings.NewReader("this is no archive"), boxrun.LoadImagesOptions{}); !errors.Is(err, boxrun.ErrInvalid) {
		t.Errorf("LoadImages(garbage) = %v, want VALIDATION_ERROR", err)
	}

	// Save through the API and load into another store: the same image.
	var out bytes.Buffer
	if err := c.SaveImages(ctx, &out, []string{"corp.example/ml/python:3.12"}); err != nil {
		t.Fatal(err)
	}
	other, _ := offlineStore(t, filepath.Join(t.TempDir(), "images"))
	back, err := other.Load(ctx, &out, image.LoadOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(back) != 1 || back[0].Ref != "corp.example/ml/python:3.12" || back[0].Digest != cfg.String() {
		t.Errorf("saved and loaded back: %+v, want corp.example/ml/python:3.12 %s", back, cfg)
	}
	var none bytes.Buffer
	if err := c.SaveImages(ctx, &none, []string{"ghost:1"}); !errors.Is(err, boxrun.ErrInvalid) || none.Len() != 0 {
		t.Errorf("SaveImages(ghost) = %v with %d bytes", err, none.Len())
	}
	if n := hits(); n != 0 {
		t.Errorf("registries got %d requests", n)
	}
}

// A box in a real gVisor sandbox runs a loaded image by its name, with no
// registry reachable.
func TestGVisorLoadedImage(t *testing.T) {
	store, hits := offlineStore(t, filepath.Join(t.TempDir(), "images"))
	s := newGVisorEnvWith(t, store)
	c, err := client.New(s.url)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	arc := archiveOf(t, "python:3.12-slim", markedBusybox(t, "loaded offline"))
	if _, err := c.LoadImages(ctx, bytes.NewReader(arc), boxrun.LoadImagesOptions{Tags: []string{"corp.example/ml/python:3.12"}}); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"python:3.12-slim", "corp.example/ml/python:3.12"} {
		res, err := c.Run(ctx, boxrun.RunRequest{Image: ref, Cmd: []string{"cat", "/marker"}})
		if err != nil {
			t.Fatal(err)
		}
		if res.Stdout != "loaded offline" || res.ExitCode == nil || *res.ExitCode != 0 {
			t.Errorf("run in %s: %+v", ref, res)
		}
	}
	if n := hits(); n != 0 {
		t.Errorf("registries got %d requests", n)
	}
}
