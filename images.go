package boxrun

import (
	"context"
	"io"
	"time"

	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/sandbox"
)

// Image archives and pull policies (see boxapi).
type (
	// LoadImagesOptions adjusts LoadImages.
	LoadImagesOptions = boxapi.LoadImagesOptions
	// PullPolicy says when creating a box pulls its image (BoxSpec.Pull).
	PullPolicy = boxapi.PullPolicy
)

// Pull policies (see BoxSpec.Pull).
const (
	PullAlways  = boxapi.PullAlways
	PullMissing = boxapi.PullMissing
	PullNever   = boxapi.PullNever
)

func (m *Manager) imageStore() (sandbox.ImageStore, error) {
	if m.images == nil {
		return nil, Errorf(CodeRuntimeError, "no image store configured (use WithImages)")
	}
	return m.images, nil
}

// PullImage fetches an image into the cache, publishing image.pull progress
// events. Errors: IMAGE_PULL_FAILED.
func (m *Manager) PullImage(ctx context.Context, ref string) (*ImageInfo, error) {
	if err := m.enter(); err != nil {
		return nil, err
	}
	defer m.leave()
	if _, err := m.imageStore(); err != nil {
		return nil, err
	}
	m.imageMu.RLock()
	defer m.imageMu.RUnlock()
	img, err := m.pullImage(ctx, ref, "")
	if err != nil {
		return nil, err
	}
	list, err := m.images.List(ctx)
	if err == nil {
		for _, info := range list {
			if info.Digest == img.Digest && (info.Ref == ref || img.Digest != "") {
				return &info, nil
			}
		}
	}
	return &ImageInfo{Ref: ref, Digest: img.Digest, Created: FormatTime(time.Now())}, nil
}

// Images lists the cached images.
func (m *Manager) Images(ctx context.Context) ([]ImageInfo, error) {
	if err := m.enter(); err != nil {
		return nil, err
	}
	defer m.leave()
	s, err := m.imageStore()
	if err != nil {
		return nil, err
	}
	return s.List(ctx)
}

// RemoveImage removes an image reference from the cache; its files go at
// the next PruneImages unless a box still uses them.
func (m *Manager) RemoveImage(ctx context.Context, ref string) error {
	if err := m.enter(); err != nil {
		return err
	}
	defer m.leave()
	s, err := m.imageStore()
	if err != nil {
		return err
	}
	return s.Remove(ctx, ref)
}

// PruneImages removes cached images that no box (in any status) and no
// snapshot uses, and returns how many went.
func (m *Manager) PruneImages(ctx context.Context) (int, error) {
	if err := m.enter(); err != nil {
		return 0, err
	}
	defer m.leave()
	s, err := m.imageStore()
	if err != nil {
		return 0, err
	}
	// Exclusive: no Create is between resolving an image and recording
	// its digest, and no pull is half done.
	m.imageMu.Lock()
	defer m.imageMu.Unlock()
	boxes, err := m.store.listBoxes(ctx, "")
	if err != nil {
		return 0, err
	}
	var keep []string
	for _, b := range boxes {
		keep = append(keep, b.Image)
		if b.ImageDigest != "" {
			keep = append(keep, b.ImageDigest)
		}
	}
	keep = append(keep, m.poolImages()...)
	// A snapshot restores on its image's rootfs: keep those too.
	snaps, err := m.store.listSnapshots(ctx, "")
	if err != nil {
		return 0, err
	}
	for _, sn := range snaps {
		keep = append(keep, sn.Image)
		if sn.ImageDigest != "" {
			keep = append(keep, sn.ImageDigest)
		}
	}
	return s.Prune(ctx, keep)
}

func (m *Manager) imageArchiver() (sandbox.ImageArchiver, error) {
	s, err := m.imageStore()
	if err != nil {
		return nil, err
	}
	a, ok := s.(sandbox.ImageArchiver)
	if !ok {
		return nil, Errorf(CodeRuntimeError, "the image store cannot load, tag or save images")
	}
	return a, nil
}

// useArchiver returns the image store's archiver for a load, tag or save,
// with the Manager entered and the image cache read-locked (no prune runs
// meanwhile); done ends both.
func (m *Manager) useArchiver() (sandbox.ImageArchiver, func(), error) {
	if err := m.enter(); err != nil {
		return nil, nil, err
	}
	a, err := m.imageArchiver()
	if err != nil {
		m.leave()
		return nil, nil, err
	}
	m.imageMu.RLock()
	return a, func() { m.imageMu.RUnlock(); m.leave() }, nil
}

// LoadImages imports the images of a docker-archive (`docker save`) or
// OCI-layout tarball read from r, plain or gzip/zstd-compressed, named by
// the archive's own tags and opts.Tags, publishing image.pull progress
// events (the archive's bytes as layer "archive", then each layer). Boxes
// created from these names use them without contacting a registry. It
// returns one ImageInfo per name. Errors: VALIDATION_ERROR (bad archive
// or name; nothing is recorded), CANCELED, TIMEOUT.
func (m *Manager) LoadImages(ctx context.Context, r io.Reader, opts LoadImagesOptions) ([]ImageInfo, error) {
	a, done, err := m.useArchiver()
	if err != nil {
		return nil, err
	}
	defer done()
	return a.LoadArchive(ctx, r, opts.Tags, opts.Size, func(p PullProgress) {
		m.bus.publish(Event{Time: m.now(), Type: EventImagePull, Pull: &p})
	})
}

// TagImage gives the cached image src names (a reference or an image
// digest) the name dst, as `docker tag`; it never pulls. Errors:
// VALIDATION_ERROR (unknown src, bad dst).
func (m *Manager) TagImage(ctx context.Context, src, dst string) (*ImageInfo, error) {
	a, done, err := m.useArchiver()
	if err != nil {
		return nil, err
	}
	defer done()
	return a.Tag(ctx, src, dst)
}

// SaveImages writes the cached images refs name to w as a docker-archive
// that `docker load` and LoadImages read. Every ref is checked before the
// first byte: an unknown one is VALIDATION_ERROR with nothing written.
func (m *Manager) SaveImages(ctx context.Context, w io.Writer, refs []string) error {
	a, done, err := m.useArchiver()
	if err != nil {
		return err
	}
	defer done()
	return a.Save(ctx, w, refs)
}
