package image

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/boxrun/boxrun/boxapi"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// List returns the cached images by reference, sorted by reference.
// Images whose references were all removed are not listed (they go at the
// next Prune).
func (s *Store) List(ctx context.Context) ([]boxapi.ImageInfo, error) {
	if s.closed() {
		return nil, fmt.Errorf("image: list: %w", boxapi.ErrClosed)
	}
	idx, err := s.index.read()
	if err != nil {
		return nil, err
	}
	out := []boxapi.ImageInfo{}
	for _, r := range idx.Refs {
		e := idx.Images[r.Digest]
		if e == nil {
			continue
		}
		created := e.Created
		if created.Unix() <= 0 { // reproducible builds often say 1970
			created = e.Pulled
		}
		out = append(out, boxapi.ImageInfo{Ref: r.Ref, Digest: e.Digest, Size: e.Size, Created: boxapi.FormatTime(created), Endpoint: r.Endpoint})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Ref < out[j].Ref })
	return out, nil
}

// Remove forgets ref (any reference form Pull accepts, or an image digest:
// then every reference to that image). The image's files stay until the
// next Prune, so boxes using it are not disturbed. An unknown ref is an
// error wrapping boxapi.ErrNotFound.
func (s *Store) Remove(ctx context.Context, ref string) error {
	if s.closed() {
		return fmt.Errorf("image: remove: %w", boxapi.ErrClosed)
	}
	key := s.refKey(ref)
	return s.index.update(func(x *index) error {
		n := 0
		for k, r := range x.Refs {
			if k == key || r.Digest == ref {
				delete(x.Refs, k)
				n++
			}
		}
		if n == 0 {
			return fmt.Errorf("image %q: %w", ref, boxapi.ErrNotFound)
		}
		return nil
	})
}

// refKey is the index key of ref, or "" if it does not parse.
func (s *Store) refKey(ref string) string {
	src, err := parseRef(ref, s.nameOpts())
	if err != nil {
		return ""
	}
	return src.key
}

// Prune deletes every cached image not named in keep (by any reference
// form Pull accepts, or by image digest), with its references, and then
// every rootfs, unpacked layer and blob that no remaining image uses, and
// the leftovers of crashed stores. It returns how many images went. Pulls
// wait while Prune runs, and Prune waits for pulls in progress.
func (s *Store) Prune(ctx context.Context, keep []string) (int, error) {
	if s.closed() {
		return 0, fmt.Errorf("image: prune: %w", boxapi.ErrClosed)
	}
	s.gcMu.Lock()
	defer s.gcMu.Unlock()

	keepKeys := map[string]bool{}
	for _, k := range keep {
		keepKeys[k] = true
		if key := s.refKey(k); key != "" {
			keepKeys[key] = true
		}
	}
	removed := 0
	var live *index
	err := s.index.update(func(x *index) error {
		kept := map[string]bool{}
		for d := range x.Images {
			if keepKeys[d] {
				kept[d] = true
			}
		}
		for k, r := range x.Refs {
			if keepKeys[k] || keepKeys[r.Remote] {
				kept[r.Digest] = true
			}
		}
		for d := range x.Images {
			if !kept[d] {
				delete(x.Images, d)
				removed++
			}
		}
		for k, r := range x.Refs {
			if !kept[r.Digest] {
				delete(x.Refs, k)
			}
		}
		live = x
		return nil
	})
	if err != nil {
		return 0, err
	}

	chains, layers, blobs := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, e := range live.Images {
		chains[e.ChainID] = true
		if e.ConfigDigest != "" {
			blobs[e.ConfigDigest] = true
		}
		for _, l := range e.Layers {
			layers[l.DiffID] = true
			if l.Digest != "" {
				blobs[l.Digest] = true
			}
		}
	}
	var errs []error
	errs = append(errs, s.sweep("rootfs", chains)...)
	errs = append(errs, s.sweep("layers", layers)...)
	errs = append(errs, s.sweep("blobs", blobs)...)
	s.cleanTmp()
	if len(errs) > 0 {
		return removed, fmt.Errorf("image: prune: %w", errs[0])
	}
	return removed, nil
}

// sweep deletes the entries of dir/<algorithm>/ whose digest is not in
// keep.
func (s *Store) sweep(dir string, keep map[string]bool) []error {
	var errs []error
	root := filepath.Join(s.dir, dir)
	algs, err := os.ReadDir(root)
	if err != nil {
		return []error{err}
	}
	for _, a := range algs {
		entries, err := os.ReadDir(filepath.Join(root, a.Name()))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, e := range entries {
			h := v1.Hash{Algorithm: a.Name(), Hex: e.Name()}
			if keep[h.String()] {
				continue
			}
			p := filepath.Join(root, a.Name(), e.Name())
			if strings.HasPrefix(e.Name(), ".") {
				continue
			}
			if err := removeAll(p); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errs
}
