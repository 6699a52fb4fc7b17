package image

import (
	"context"
	"fmt"

	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/sandbox"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// refNameAnnotation is the OCI annotation naming a manifest in a layout.
const refNameAnnotation = "org.opencontainers.image.ref.name"

// pullLocal imports an image from an OCI layout or a docker save tarball.
// The source is read each time (cheaply: index, manifest, config), and its
// layers are unpacked only if not cached.
func (s *Store) pullLocal(ctx context.Context, src *source, report func(boxapi.PullProgress)) (*sandbox.Image, error) {
	var (
		img    v1.Image
		digest v1.Hash
		err    error
	)
	switch src.kind {
	case kindOCI:
		img, err = s.layoutImage(src)
		if err == nil {
			digest, err = img.Digest()
		}
	case kindArchive:
		img, err = tarball.ImageFromPath(src.path, src.atag)
		if err == nil {
			// A tarball has no manifest of its own: the config digest (the
			// Docker image ID) identifies the image.
			digest, err = img.ConfigName()
		}
	default:
		err = fmt.Errorf("unknown source kind %q", src.kind)
	}
	if err != nil {
		return nil, err
	}
	if idx, err := s.index.read(); err == nil {
		if out, ok := s.ready(ctx, src, "", idx.Images[digest.String()], report); ok {
			return out, nil
		}
	}
	return s.build(ctx, src, "", digest.String(), src.kind, img, "", report)
}

// layoutImage selects the image of src in an OCI layout: by digest, by tag
// (the ref.name annotation), or the only one there is; an index resolves
// to the Store's platform.
func (s *Store) layoutImage(src *source) (v1.Image, error) {
	p, err := layout.FromPath(src.path)
	if err != nil {
		return nil, err
	}
	ii, err := p.ImageIndex()
	if err != nil {
		return nil, err
	}
	for depth := 0; depth < 4; depth++ {
		im, err := ii.IndexManifest()
		if err != nil {
			return nil, err
		}
		desc, err := s.selectDescriptor(src, im.Manifests, depth == 0)
		if err != nil {
			return nil, err
		}
		if !desc.MediaType.IsIndex() {
			return ii.Image(desc.Digest)
		}
		if ii, err = ii.ImageIndex(desc.Digest); err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("%s: indexes nested too deep", src.path)
}

func (s *Store) selectDescriptor(src *source, descs []v1.Descriptor, top bool) (v1.Descriptor, error) {
	var found []v1.Descriptor
	for _, d := range descs {
		switch {
		case top && src.digest.Hex != "":
			if d.Digest == src.digest {
				return d, nil
			}
		case top && src.tag != "":
			if d.Annotations[refNameAnnotation] == src.tag {
				return d, nil
			}
		case d.Platform == nil || d.Platform.Satisfies(s.opts.platform) || !d.MediaType.IsImage() && !d.MediaType.IsIndex():
			if d.MediaType.IsImage() || d.MediaType.IsIndex() {
				found = append(found, d)
			}
		}
	}
	switch {
	case top && src.digest.Hex != "":
		return v1.Descriptor{}, fmt.Errorf("%s: no manifest %s", src.path, src.digest)
	case top && src.tag != "":
		return v1.Descriptor{}, fmt.Errorf("%s: no image tagged %q", src.path, src.tag)
	case len(found) == 0:
		return v1.Descriptor{}, fmt.Errorf("%s: no image for platform %s", src.path, s.opts.platform)
	case len(found) > 1 && top:
		return v1.Descriptor{}, fmt.Errorf("%s holds %d images: select one with :tag or @digest", src.path, len(found))
	}
	return found[0], nil
}
