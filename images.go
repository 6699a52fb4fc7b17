package boxrun

import (
	"context"
	"time"

	"github.com/boxrun/boxrun/sandbox"
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
	img, err := m.pullImage(ctx, ref)
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

// PruneImages removes cached images that no box (in any status) uses and
// returns how many went.
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
	return s.Prune(ctx, keep)
}
