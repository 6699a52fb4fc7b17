package image

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/boxrun/boxrun/sandbox"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/singleflight"
	"golang.org/x/sys/unix"
)

var _ sandbox.ImageStore = (*Store)(nil)

// Store is a content-addressed image cache in a directory. It resolves
// image references, fetches what is missing and unpacks each image into a
// read-only root filesystem shared by every box of that image.
//
// Layout of the directory:
//
//	blobs/sha256/<hex>          compressed layer blobs pulled from registries
//	layers/sha256/<diffid>/fs   one unpacked layer (whiteouts kept as .wh. files)
//	rootfs/sha256/<chainid>     the layers of an image applied in order
//	index.json                  references and images (written atomically)
//	tmp/                        work in progress, renamed into place when done
//
// Every entry is written to tmp and renamed into place, so a crash leaves
// nothing half-made in use; Open (and Prune) delete what crashed stores left
// in tmp. Image root filesystems hard-link the files of the layer
// directories: nobody may modify them.
//
// A Store is safe for concurrent use, also by several processes sharing the
// directory. Close it when done.
type Store struct {
	dir    string
	opts   options
	log    *slog.Logger
	isRoot bool
	index  *indexFile

	ctx    context.Context // canceled by Close; pulls run under it
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// gcMu is held shared by pulls while they work and exclusively by
	// Prune, so Prune never deletes what a pull is about to use.
	gcMu sync.RWMutex

	flights  flightGroup        // one pull per reference at a time
	layerSF  singleflight.Group // one unpack per layer
	rootfsSF singleflight.Group // one build per rootfs

	tmp     string   // this store's private work dir under tmp/
	tmpLock *os.File // flock held while the store is open

	closeOnce sync.Once
	closeErr  error
}

// Open opens (creating it if needed) the image cache in dir. The caller must
// Close the Store.
func Open(dir string, opts ...Option) (*Store, error) {
	o := defaultOptions()
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	t, err := registryTransport(o.transport, o.registries)
	if err != nil {
		return nil, err
	}
	o.transport = t
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("image: open %s: %w", dir, err)
	}
	for _, d := range []string{"blobs/sha256", "layers/sha256", "rootfs/sha256", "tmp"} {
		if err := os.MkdirAll(filepath.Join(abs, d), 0o755); err != nil {
			return nil, fmt.Errorf("image: open: %w", err)
		}
	}
	s := &Store{
		dir:    abs,
		opts:   o,
		log:    o.logger,
		isRoot: os.Geteuid() == 0,
		index:  &indexFile{path: filepath.Join(abs, "index.json"), lock: filepath.Join(abs, "index.lock")},
	}
	s.flights.init()
	s.cleanTmp()
	if err := s.lockTmp(); err != nil {
		return nil, err
	}
	if _, err := s.index.read(); err != nil {
		s.unlockTmp()
		return nil, err
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// Dir returns the absolute path of the cache directory.
func (s *Store) Dir() string { return s.dir }

// Close cancels pulls in progress, waits for them to end and releases the
// Store. Root filesystems already returned stay in place. Close is
// idempotent; other methods fail after it with an error wrapping
// boxapi.ErrClosed.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.flights.mu.Lock() // no flight starts after this
		s.cancel()
		s.flights.mu.Unlock()
		s.wg.Wait()
		s.closeErr = s.unlockTmp()
	})
	return s.closeErr
}

func (s *Store) closed() bool { return s.ctx.Err() != nil }

func (s *Store) blobPath(h v1.Hash) string {
	return filepath.Join(s.dir, "blobs", h.Algorithm, h.Hex)
}

func (s *Store) layerPath(diffID v1.Hash) string {
	return filepath.Join(s.dir, "layers", diffID.Algorithm, diffID.Hex)
}

func (s *Store) rootfsPath(chainID v1.Hash) string {
	return filepath.Join(s.dir, "rootfs", chainID.Algorithm, chainID.Hex)
}

// lockTmp makes this store's private work dir tmp/<name> and holds an
// exclusive flock on tmp/<name>.lock while the store is open, so that other
// stores can tell a live work dir from one a crash left behind.
func (s *Store) lockTmp() error {
	f, err := os.CreateTemp(filepath.Join(s.dir, "tmp"), "s*.lock")
	if err != nil {
		return fmt.Errorf("image: open: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		os.Remove(f.Name())
		return fmt.Errorf("image: open: lock %s: %w", f.Name(), err)
	}
	tmp := strings.TrimSuffix(f.Name(), ".lock")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		f.Close()
		os.Remove(f.Name())
		return fmt.Errorf("image: open: %w", err)
	}
	s.tmp, s.tmpLock = tmp, f
	return nil
}

func (s *Store) unlockTmp() error {
	if s.tmpLock == nil {
		return nil
	}
	err := removeAll(s.tmp)
	os.Remove(s.tmpLock.Name())
	if cerr := s.tmpLock.Close(); err == nil {
		err = cerr
	}
	s.tmpLock = nil
	return err
}

// staleAge is how old an unlocked entry of tmp must be before cleanTmp
// deletes it: younger ones may belong to a store that is opening right now.
const staleAge = time.Minute

// cleanTmp removes the work dirs of stores that are no longer open: those
// whose lock file nobody holds.
func (s *Store) cleanTmp() {
	root := filepath.Join(s.dir, "tmp")
	entries, err := os.ReadDir(root)
	if err != nil {
		return
	}
	live := map[string]bool{}
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".lock")
		if !ok {
			continue
		}
		p := filepath.Join(root, e.Name())
		if s.tmpLock != nil && p == s.tmpLock.Name() {
			live[name] = true
			continue
		}
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			continue
		}
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
			live[name] = true // held by a live store
		}
		f.Close()
	}
	for _, e := range entries {
		name := strings.TrimSuffix(e.Name(), ".lock")
		if live[name] {
			continue
		}
		if info, err := e.Info(); err != nil || time.Since(info.ModTime()) < staleAge {
			continue
		}
		p := filepath.Join(root, e.Name())
		if err := removeAll(p); err != nil {
			s.log.Warn("image: clean tmp", "path", p, "err", err)
		}
	}
}
