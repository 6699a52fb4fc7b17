package image

import (
	"archive/tar"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/boxrun/boxrun/boxapi"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Tag gives the cached image that src names (any reference form Pull
// accepts, or an image digest) the name dst ("name[:tag]"), as `docker
// tag` does. The name is local: see Load. Tag never pulls: an unknown src
// is an error wrapping boxapi.ErrNotFound; a bad dst is VALIDATION_ERROR.
func (s *Store) Tag(ctx context.Context, src, dst string) (*boxapi.ImageInfo, error) {
	if s.closed() {
		return nil, fmt.Errorf("image: tag: %w", boxapi.ErrClosed)
	}
	to, err := s.localName(dst)
	if err != nil {
		return nil, err
	}
	var info boxapi.ImageInfo
	err = s.index.update(func(x *index) error {
		e, err := s.lookup(x, src)
		if err != nil {
			return err
		}
		x.Refs[to.key] = &refEntry{Ref: dst, Digest: e.Digest, Platform: s.opts.platform.String(), Pulled: time.Now().UTC(), Local: true}
		info = infoOf(dst, e, "")
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &info, nil
}

// lookup finds the cached image ref names in x, without pulling.
func (s *Store) lookup(x *index, ref string) (*imageEntry, error) {
	if e := x.Images[ref]; e != nil {
		return e, nil
	}
	if key := s.refKey(ref); key != "" {
		if r := x.Refs[key]; r != nil && x.Images[r.Digest] != nil {
			return x.Images[r.Digest], nil
		}
	}
	return nil, &boxapi.Error{Code: boxapi.CodeValidationError,
		Message: fmt.Sprintf("Image '%s' is not in the image store", ref), Err: fmt.Errorf("image %q: %w", ref, boxapi.ErrNotFound)}
}

// Save writes the cached images that refs name (any form Tag accepts) to w
// as a docker-archive (`docker save` format, which `docker load` and Load
// read back), each named by the refs given for it that are registry tags.
// Every ref is resolved and every blob found before the first byte is
// written: an unknown ref fails at once with VALIDATION_ERROR wrapping
// boxapi.ErrNotFound. Images come out as they were cached: the same
// config and layers, so the image ID (config digest) is unchanged. Prune
// waits while Save writes.
func (s *Store) Save(ctx context.Context, w io.Writer, refs []string) error {
	if s.closed() {
		return fmt.Errorf("image: save: %w", boxapi.ErrClosed)
	}
	if len(refs) == 0 {
		return boxapi.Errorf(boxapi.CodeValidationError, "Nothing to save: name at least one image")
	}
	s.gcMu.RLock()
	defer s.gcMu.RUnlock()
	x, err := s.index.read()
	if err != nil {
		return err
	}
	type saved struct {
		e      *imageEntry
		tags   []string
		layers []string // blob paths
	}
	var order []*saved
	byDigest := map[string]*saved{}
	for _, ref := range refs {
		e, err := s.lookup(x, ref)
		if err != nil {
			return err
		}
		sv := byDigest[e.Digest]
		if sv == nil {
			sv = &saved{e: e}
			if e.ConfigDigest == "" || !s.hasBlob(e.ConfigDigest) {
				return boxapi.Errorf(boxapi.CodeValidationError, "Image '%s' was cached without its config (by an older BoxRun): pull or load it again to save it", ref)
			}
			for _, l := range e.Layers {
				p := s.findLayerBlob(x, l)
				if p == "" {
					return boxapi.Errorf(boxapi.CodeValidationError, "Image '%s': layer %s was cached without its blob: pull or load it again to save it", ref, l.DiffID)
				}
				sv.layers = append(sv.layers, p)
			}
			byDigest[e.Digest] = sv
			order = append(order, sv)
		}
		if t := s.repoTag(ref); t != "" && !contains(sv.tags, t) {
			sv.tags = append(sv.tags, t)
		}
	}

	tw := tar.NewWriter(w)
	written := map[string]bool{}
	var manifest []dockerManifest
	for _, sv := range order {
		m := dockerManifest{Config: blobName(sv.e.ConfigDigest), RepoTags: sv.tags}
		if m.RepoTags == nil {
			m.RepoTags = []string{}
		}
		files := append([]string{s.blobPathOf(sv.e.ConfigDigest)}, sv.layers...)
		for i, p := range files {
			n := "blobs/sha256/" + p[strings.LastIndex(p, "/")+1:]
			if i > 0 {
				m.Layers = append(m.Layers, n)
			}
			if written[n] {
				continue
			}
			written[n] = true
			if err := writeTarFile(ctx, tw, n, p); err != nil {
				return fmt.Errorf("image: save: %w", err)
			}
		}
		manifest = append(manifest, m)
	}
	b, err := json.Marshal(manifest)
	if err != nil {
		return err
	}
	hdr := &tar.Header{Name: "manifest.json", Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("image: save: %w", err)
	}
	if _, err := tw.Write(b); err != nil {
		return fmt.Errorf("image: save: %w", err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("image: save: %w", err)
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func blobName(digest string) string { return "blobs/sha256/" + strings.TrimPrefix(digest, "sha256:") }

func (s *Store) blobPathOf(digest string) string {
	h, err := v1.NewHash(digest)
	if err != nil {
		return ""
	}
	return s.blobPath(h)
}

func (s *Store) hasBlob(digest string) bool {
	p := s.blobPathOf(digest)
	if p == "" {
		return false
	}
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// findLayerBlob returns the path of a kept blob of layer l: its own, or
// that of another image with the same layer (compressed or not: both hold
// the same tar), or "" if there is none.
func (s *Store) findLayerBlob(x *index, l layerEntry) string {
	cands := []string{l.Digest, l.DiffID}
	for _, e := range x.Images {
		for _, o := range e.Layers {
			if o.DiffID == l.DiffID && o.Digest != "" {
				cands = append(cands, o.Digest)
			}
		}
	}
	for _, c := range cands {
		if c != "" && s.hasBlob(c) {
			return s.blobPathOf(c)
		}
	}
	return ""
}

// repoTag is the name ref gives an image in a docker-archive (Docker's
// familiar form: "python:3.12", "corp.io/x/y:1"), or "" if ref is not a
// registry tag.
func (s *Store) repoTag(ref string) string {
	src, err := parseRef(ref, s.nameOpts())
	if err != nil || src.kind != kindRegistry {
		return ""
	}
	t, ok := src.ref.(name.Tag)
	if !ok {
		return ""
	}
	repo := t.Context().RepositoryStr()
	if reg := t.Context().RegistryStr(); reg == name.DefaultRegistry {
		repo = strings.TrimPrefix(repo, "library/")
	} else {
		repo = reg + "/" + repo
	}
	return repo + ":" + t.TagStr()
}

// writeTarFile copies the file at p into tw as name.
func writeTarFile(ctx context.Context, tw *tar.Writer, name, p string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	hdr := &tar.Header{Name: name, Mode: 0o644, Size: fi.Size(), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	_, err = io.Copy(tw, &ctxReader{ctx: ctx, r: f})
	return err
}

// ctxReader stops reading once ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(b []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(b)
}
