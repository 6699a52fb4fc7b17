package boxapi

// PullProgress reports the progress of one layer of an image pull.
type PullProgress struct {
	Ref    string // the image reference being pulled
	Layer  string // layer digest
	Done   int64  // bytes done
	Total  int64  // bytes in the layer (0 if unknown)
	Cached bool   // the layer was already in the cache
}

// ImageInfo describes a cached image.
type ImageInfo struct {
	Ref     string `json:"ref"`
	Digest  string `json:"digest"`
	Size    int64  `json:"size"` // bytes of compressed layers
	Created string `json:"created"`
	// Endpoint is what served the image's last pull: a registry mirror's
	// URL or the registry host; empty for local images (an extension).
	Endpoint string `json:"endpoint,omitempty"`
}

// DriverInfo describes a Manager's driver.
type DriverInfo struct {
	Name    string            `json:"name"`
	Details map[string]string `json:"details"`
}

// LoadImagesOptions adjusts LoadImages.
type LoadImagesOptions struct {
	// Tags name the loaded image ("name[:tag]") besides the archive's own
	// tags; only for an archive of one image.
	Tags []string
	// Size is the archive's size in bytes when known (for progress).
	Size int64
}
