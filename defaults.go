package boxrun

import (
	"fmt"
	"path/filepath"

	"github.com/boxrun/boxrun/image"
	"github.com/boxrun/boxrun/sandbox"
)

// applyDefaults fills in what Open's options left out: the default driver
// (gVisor on Linux) and an image store under dir/images. It returns the
// closers of what it made, for Open to release on a later failure.
func applyDefaults(dir string, cfg *config) error {
	if cfg.driver == nil {
		d, err := defaultDriver(dir, cfg)
		if err != nil {
			return err
		}
		cfg.driver = d
	}
	if !cfg.imagesSet {
		s, err := image.Open(filepath.Join(dir, "images"), image.WithLogger(cfg.logger))
		if err != nil {
			_ = cfg.driver.Close()
			return fmt.Errorf("default image store: %w", err)
		}
		cfg.images = s
	}
	return nil
}

var _ sandbox.ImageStore = (*image.Store)(nil)
