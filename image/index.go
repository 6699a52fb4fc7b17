package image

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/boxrun/boxrun/sandbox"
	"golang.org/x/sys/unix"
)

// index is the content of index.json: which image each reference names,
// and what each image is made of.
type index struct {
	Version int                    `json:"version"`
	Refs    map[string]*refEntry   `json:"refs"`   // by normalized reference
	Images  map[string]*imageEntry `json:"images"` // by image digest
}

// refEntry records what a reference resolved to.
type refEntry struct {
	Ref      string    `json:"ref"`              // as last given
	Digest   string    `json:"digest"`           // the image (key of index.Images)
	Remote   string    `json:"remote,omitempty"` // what a registry tag pointed to (index or manifest digest)
	Platform string    `json:"platform,omitempty"`
	Pulled   time.Time `json:"pulled"`
	// Endpoint is what served the last pull: a mirror URL or the registry.
	Endpoint string `json:"endpoint,omitempty"`
	// Local marks names given by Load or Tag: no registry is asked about
	// them unless a pull says PullAlways.
	Local bool `json:"local,omitempty"`
}

// imageEntry records one cached image.
type imageEntry struct {
	Digest  string `json:"digest"` // manifest digest; config digest for docker-archive
	Source  string `json:"source"` // "registry", "oci", "docker-archive"
	ChainID string `json:"chain_id"`
	// ConfigDigest names the raw config blob under blobs/ (for Save);
	// empty for images cached before configs were kept.
	ConfigDigest string              `json:"config_digest,omitempty"`
	Layers       []layerEntry        `json:"layers"`
	Config       sandbox.ImageConfig `json:"config"`
	Size         int64               `json:"size"`
	Created      time.Time           `json:"created"`
	Pulled       time.Time           `json:"pulled"`
}

// layerEntry is one layer of an image.
type layerEntry struct {
	DiffID string `json:"diff_id"`
	Digest string `json:"digest,omitempty"` // the blob kept under blobs/ (the diff ID for docker-archive layers)
	Size   int64  `json:"size"`
	// MediaType is the layer's, as its manifest said.
	MediaType string `json:"media_type,omitempty"`
}

const indexVersion = 1

// indexFile reads and atomically rewrites index.json. Updates are
// serialized in the process by mu and across processes by an flock on the
// lock file; reads need neither, as the file is only ever replaced whole.
type indexFile struct {
	path, lock string
	mu         sync.Mutex
}

func (x *indexFile) read() (*index, error) {
	idx := &index{Version: indexVersion, Refs: map[string]*refEntry{}, Images: map[string]*imageEntry{}}
	b, err := os.ReadFile(x.path)
	if errors.Is(err, fs.ErrNotExist) {
		return idx, nil
	}
	if err != nil {
		return nil, fmt.Errorf("image: read index: %w", err)
	}
	if err := json.Unmarshal(b, idx); err != nil {
		return nil, fmt.Errorf("image: read index %s: %w", x.path, err)
	}
	if idx.Version != indexVersion {
		return nil, fmt.Errorf("image: index %s has version %d, want %d", x.path, idx.Version, indexVersion)
	}
	if idx.Refs == nil {
		idx.Refs = map[string]*refEntry{}
	}
	if idx.Images == nil {
		idx.Images = map[string]*imageEntry{}
	}
	return idx, nil
}

// update runs fn on the current index and writes the result back, unless
// fn fails.
func (x *indexFile) update(fn func(*index) error) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	lf, err := os.OpenFile(x.lock, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("image: lock index: %w", err)
	}
	defer lf.Close()
	if err := unix.Flock(int(lf.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("image: lock index: %w", err)
	}
	idx, err := x.read()
	if err != nil {
		return err
	}
	if err := fn(idx); err != nil {
		return err
	}
	b, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(x.path, b)
}

// writeFileAtomic writes b to a temporary file beside p, syncs it and
// renames it over p.
func writeFileAtomic(p string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(p), "."+filepath.Base(p)+".*")
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(f.Name(), p)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("image: write %s: %w", p, err)
	}
	return nil
}
