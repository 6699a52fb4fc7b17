package httpapi_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/boxruntest"
	"github.com/boxrun/boxrun/httpapi"
	"github.com/boxrun/boxrun/sandbox"
)

// memStore is an in-memory ImageStore: refs starting with "bad" fail to
// pull; others resolve to no rootfs (the fake driver needs none).
type memStore struct{ refs map[string]bool }

func (s *memStore) Pull(_ context.Context, ref string, progress func(boxapi.PullProgress)) (*sandbox.Image, error) {
	if len(ref) >= 3 && ref[:3] == "bad" {
		return nil, fmt.Errorf("manifest unknown: %w", boxapi.ErrImagePull)
	}
	if progress != nil {
		progress(boxapi.PullProgress{Ref: ref, Layer: "sha256:00", Done: 1, Total: 1})
	}
	s.refs[ref] = true
	return &sandbox.Image{Ref: ref, Digest: "sha256:" + fmt.Sprintf("%064x", len(ref)), Rootfs: "/"}, nil
}

func (s *memStore) List(context.Context) ([]boxapi.ImageInfo, error) {
	out := []boxapi.ImageInfo{}
	for ref := range s.refs {
		out = append(out, boxapi.ImageInfo{Ref: ref, Digest: "sha256:" + fmt.Sprintf("%064x", len(ref)), Size: 42, Created: "2026-01-01T00:00:00+00:00"})
	}
	return out, nil
}

func (s *memStore) Remove(_ context.Context, ref string) error {
	if !s.refs[ref] {
		return boxapi.Errorf(boxapi.CodeImagePullFailed, "image %s not cached: %w", ref, boxapi.ErrNotFound)
	}
	delete(s.refs, ref)
	return nil
}

func (s *memStore) Prune(context.Context, []string) (int, error) { return 0, nil }

func TestImagesExtension(t *testing.T) {
	mgr := boxruntest.NewManager(t, boxrun.WithImages(&memStore{refs: map[string]bool{}}))
	srv := httptest.NewServer(httpapi.New(mgr))
	t.Cleanup(srv.Close)
	e := &env{t: t, mgr: mgr, url: srv.URL}

	r := e.do("POST", "/v1/images", `{"ref":"alpine:3.20"}`)
	if r.status != 200 {
		t.Fatalf("pull: %d %s", r.status, r.body)
	}
	golden(t, "image.json", r.body)
	golden(t, "image_list.json", e.do("GET", "/v1/images", "").body)
	if r := e.do("POST", "/v1/images", `{"ref":"bad:1"}`); r.status != 400 || jsonOf[map[string]any](t, r)["code"] != "IMAGE_PULL_FAILED" {
		t.Errorf("bad pull: %d %s", r.status, r.body)
	}
	if r := e.do("POST", "/v1/boxes", `{"image":"bad:2","name":"broken"}`); r.status != 400 || jsonOf[map[string]any](t, r)["code"] != "IMAGE_PULL_FAILED" {
		t.Errorf("create from a bad image: %d %s", r.status, r.body)
	}
	golden(t, "box_error.json", e.do("GET", "/v1/boxes/broken", "").body)
	if r := e.do("DELETE", "/v1/images?ref=alpine:3.20", ""); r.status != 200 {
		t.Errorf("remove: %d %s", r.status, r.body)
	}
	if r := e.do("POST", "/v1/images:prune", ""); r.status != 200 {
		t.Errorf("prune: %d %s", r.status, r.body)
	} else {
		golden(t, "gc_0.json", r.body)
	}
}
