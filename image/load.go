package image

import (
	"archive/tar"
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/sandbox"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// LoadOptions adjusts Load.
type LoadOptions struct {
	// Tags name the loaded image ("name[:tag]", tag latest by default),
	// besides the names the archive gives it. An archive holding more than
	// one image cannot be tagged this way.
	Tags []string
	// Size is the archive's size in bytes when known, for progress.
	Size int64
}

// ArchiveLayer is the Layer of the progress Load reports while it reads the
// archive itself (before unpacking layers, reported as pulls are).
const ArchiveLayer = "archive"

// Load imports the images of an image archive read from r: a `docker save`
// tarball (docker-archive, manifest.json) or an OCI image layout packed in
// a tar, either of them plain, gzip- or zstd-compressed. Each image is named
// by the archive's own tags (docker-archive RepoTags; the
// io.containerd.image.name or a full org.opencontainers.image.ref.name
// annotation of an OCI layout) and by o.Tags. Names so given are local:
// pulls under the Store's policy (and PullMissing, PullNever) use them
// without contacting any registry.
//
// Load checks the whole archive before recording anything: a corrupt
// archive, an entry escaping its directory (absolute, "..", a link out),
// a digest mismatch or an image without any name fails it, and leaves no
// name in the index and no work file behind (layers it unpacked are
// unreferenced and go at the next Prune). progress gets the bytes of the
// archive read (Layer ArchiveLayer), then each layer as in Pull.
//
// It returns one ImageInfo per name. Errors are *boxapi.Error values:
// VALIDATION_ERROR for a bad archive or name, CANCELED/TIMEOUT when ctx
// ends first.
func (s *Store) Load(ctx context.Context, r io.Reader, o LoadOptions, progress func(boxapi.PullProgress)) ([]boxapi.ImageInfo, error) {
	if s.closed() {
		return nil, fmt.Errorf("image: load: %w", boxapi.ErrClosed)
	}
	if progress == nil {
		progress = func(boxapi.PullProgress) {}
	}
	var tags []*source
	for _, t := range o.Tags {
		src, err := s.localName(t)
		if err != nil {
			return nil, err
		}
		tags = append(tags, src)
	}
	if !s.startFlight() {
		return nil, fmt.Errorf("image: load: %w", boxapi.ErrClosed)
	}
	defer s.wg.Done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.ctx, cancel)
	defer stop()

	work, err := os.MkdirTemp(s.tmp, "load-")
	if err != nil {
		return nil, fmt.Errorf("image: load: %w", err)
	}
	defer removeAll(work)
	spool := filepath.Join(work, "archive.tar")
	if err := spoolArchive(ctx, r, spool, o.Size, progress); err != nil {
		return nil, loadError(ctx, err)
	}
	arc, err := scanArchive(spool)
	if err != nil {
		return nil, loadError(ctx, err)
	}

	s.gcMu.RLock()
	defer s.gcMu.RUnlock()
	var images []loadedImage
	switch {
	case arc.has["manifest.json"]:
		images, err = s.archiveImages(spool)
	case arc.has["index.json"] && arc.has["oci-layout"]:
		images, err = s.layoutImages(spool, filepath.Join(work, "layout"), arc)
	default:
		err = errors.New("neither a docker-archive (no manifest.json) nor an OCI layout (no index.json and oci-layout)")
	}
	if err != nil {
		return nil, loadError(ctx, err)
	}
	if len(tags) > 0 {
		if len(images) != 1 {
			return nil, loadError(ctx, fmt.Errorf("the archive holds %d images: it cannot be tagged as a whole", len(images)))
		}
		images[0].names = append(images[0].names, tags...)
	}
	for i, im := range images {
		if len(im.names) == 0 {
			return nil, loadError(ctx, fmt.Errorf("image %d of the archive (%s) has no name: give it one with a tag", i+1, im.digest))
		}
	}
	entries := make([]*imageEntry, len(images))
	for i, im := range images {
		e, _, err := s.importImage(ctx, im.names[0].given, im.digest, im.kind, im.img, progress)
		if err != nil {
			return nil, loadError(ctx, err)
		}
		entries[i] = e
	}
	var out []boxapi.ImageInfo
	err = s.index.update(func(x *index) error {
		now := time.Now().UTC()
		for i, im := range images {
			e := entries[i]
			if old := x.Images[e.Digest]; old != nil {
				e.Pulled = old.Pulled
			}
			x.Images[e.Digest] = e
			for _, n := range im.names {
				x.Refs[n.key] = &refEntry{Ref: n.given, Digest: e.Digest, Platform: s.opts.platform.String(), Pulled: now, Local: true}
				out = append(out, infoOf(n.given, e, ""))
			}
		}
		return nil
	})
	if err != nil {
		return nil, loadError(ctx, err)
	}
	return out, nil
}

// loadedImage is one image found in an archive.
type loadedImage struct {
	img    v1.Image
	digest string
	kind   sourceKind
	names  []*source
}

// localName parses a name for Load or Tag: a registry reference with a
// tag (not a digest: a digest names content, which a local name cannot
// promise).
func (s *Store) localName(ref string) (*source, error) {
	src, err := parseRef(ref, s.nameOpts())
	if err != nil {
		return nil, boxapi.Errorf(boxapi.CodeValidationError, "Invalid image name '%s': %v", ref, err)
	}
	if src.kind != kindRegistry {
		return nil, boxapi.Errorf(boxapi.CodeValidationError, "Invalid image name '%s': a name is a registry reference such as name:tag", ref)
	}
	if _, ok := src.ref.(name.Tag); !ok {
		return nil, boxapi.Errorf(boxapi.CodeValidationError, "Invalid image name '%s': a name cannot be a digest", ref)
	}
	return src, nil
}

func loadError(ctx context.Context, err error) error {
	var be *boxapi.Error
	switch {
	case errors.As(err, &be):
		return err
	case ctx.Err() != nil && errors.Is(err, context.DeadlineExceeded):
		return &boxapi.Error{Code: boxapi.CodeTimeout, Message: "Image load timed out", Err: err}
	case ctx.Err() != nil:
		return &boxapi.Error{Code: boxapi.CodeCanceled, Message: "Image load canceled", Err: err}
	}
	return &boxapi.Error{Code: boxapi.CodeValidationError, Message: fmt.Sprintf("Failed to load image archive: %v", err), Err: err}
}

func infoOf(ref string, e *imageEntry, endpoint string) boxapi.ImageInfo {
	created := e.Created
	if created.Unix() <= 0 { // reproducible builds often say 1970
		created = e.Pulled
	}
	return boxapi.ImageInfo{Ref: ref, Digest: e.Digest, Size: e.Size, Created: boxapi.FormatTime(created), Endpoint: endpoint}
}

// spoolArchive copies the archive from r to p, decompressed, reporting
// progress.
func spoolArchive(ctx context.Context, r io.Reader, p string, size int64, progress func(boxapi.PullProgress)) error {
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	pr := &progressReader{ctx: ctx, r: r, report: progress, p: boxapi.PullProgress{Ref: "load", Layer: ArchiveLayer, Total: size}}
	br := bufio.NewReaderSize(pr, 256<<10)
	dr, err := decompress(br)
	if err == nil {
		_, err = io.Copy(f, dr)
		err = closeAll(err, dr)
	}
	err = closeAll(err, f)
	if err != nil {
		return fmt.Errorf("read archive: %w", err)
	}
	pr.done()
	return nil
}

// archive lists the entries of a spooled archive.
type archive struct {
	has   map[string]bool // regular files, by clean name
	dirs  map[string]bool
	links map[string]string // symlinks: clean name -> clean target inside the archive
}

// scanArchive reads the whole tar, checking every entry: names must stay
// inside the archive (no absolute names, no ".."), links must point inside
// it, and only regular files, directories and symlinks may appear.
func scanArchive(p string) (*archive, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	arc := &archive{has: map[string]bool{}, dirs: map[string]bool{}, links: map[string]string{}}
	tr := tar.NewReader(bufio.NewReader(f))
	n := 0
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("corrupt archive: %w", err)
		}
		n++
		clean, err := archiveName(h.Name)
		if err != nil {
			return nil, err
		}
		switch h.Typeflag {
		case tar.TypeReg:
			if arc.has[clean] {
				return nil, fmt.Errorf("entry %q appears twice", h.Name)
			}
			arc.has[clean] = true
		case tar.TypeDir:
			arc.dirs[clean] = true
		case tar.TypeSymlink:
			if path.IsAbs(h.Linkname) {
				return nil, fmt.Errorf("entry %q links outside the archive (to %q)", h.Name, h.Linkname)
			}
			target, err := archiveName(path.Join(path.Dir(clean), h.Linkname))
			if err != nil {
				return nil, fmt.Errorf("entry %q links outside the archive (to %q)", h.Name, h.Linkname)
			}
			arc.links[clean] = target
		default:
			return nil, fmt.Errorf("entry %q has type %q: an image archive holds only files, directories and symlinks", h.Name, h.Typeflag)
		}
		if _, err := io.Copy(io.Discard, tr); err != nil {
			return nil, fmt.Errorf("corrupt archive: %w", err)
		}
	}
	if n == 0 {
		return nil, errors.New("empty archive")
	}
	return arc, nil
}

// archiveName cleans an entry name, refusing any that would leave the
// archive's root.
func archiveName(n string) (string, error) {
	if path.IsAbs(n) || strings.HasPrefix(n, "\\") {
		return "", fmt.Errorf("entry %q has an absolute name", n)
	}
	for _, part := range strings.Split(n, "/") {
		if part == ".." {
			return "", fmt.Errorf("entry %q escapes the archive", n)
		}
	}
	c := path.Clean(n)
	if c == "." || c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("entry %q escapes the archive", n)
	}
	return c, nil
}

// dockerManifest is one entry of a docker-archive's manifest.json.
type dockerManifest struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// archiveImages reads the images of a docker-archive.
func (s *Store) archiveImages(spool string) ([]loadedImage, error) {
	m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(spool) })
	if err != nil {
		return nil, fmt.Errorf("read manifest.json: %w", err)
	}
	if len(m) == 0 {
		return nil, errors.New("manifest.json lists no image")
	}
	var out []loadedImage
	for i, d := range m {
		var tag *name.Tag
		var names []*source
		for _, rt := range d.RepoTags {
			src, err := s.localName(rt)
			if err != nil {
				return nil, err
			}
			names = append(names, src)
			if tag == nil {
				t := src.ref.(name.Tag)
				tag = &t
			}
		}
		if tag == nil && len(m) > 1 {
			return nil, fmt.Errorf("image %d of manifest.json has no RepoTags: an archive of several images needs them", i+1)
		}
		img, err := tarball.ImageFromPath(spool, tag)
		if err != nil {
			return nil, err
		}
		digest, err := img.ConfigName()
		if err != nil {
			return nil, err
		}
		out = append(out, loadedImage{img: img, digest: digest.String(), kind: kindArchive, names: names})
	}
	return out, nil
}

// ociManifestNames reads the names OCI layouts give their top-level
// manifests.
const containerdNameAnnotation = "io.containerd.image.name"

// layoutImages unpacks an OCI layout archive into dir and reads its images.
func (s *Store) layoutImages(spool, dir string, arc *archive) ([]loadedImage, error) {
	if err := extractLayout(spool, dir); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		return nil, err
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("read index.json: %w", err)
	}
	if len(idx.Manifests) == 0 {
		return nil, errors.New("index.json lists no image")
	}
	var out []loadedImage
	for _, d := range idx.Manifests {
		if !d.MediaType.IsImage() && !d.MediaType.IsIndex() {
			continue
		}
		src := &source{kind: kindOCI, path: dir, digest: d.Digest}
		img, err := s.layoutImage(src)
		if err != nil {
			return nil, err
		}
		digest, err := img.Digest()
		if err != nil {
			return nil, err
		}
		var names []*source
		for _, n := range []string{d.Annotations[containerdNameAnnotation], d.Annotations[refNameAnnotation]} {
			if n == "" || !strings.ContainsAny(n, "/:") {
				continue // a bare tag such as "3.20" names nothing by itself
			}
			src, err := s.localName(n)
			if err != nil {
				return nil, err
			}
			if len(names) == 0 || names[0].key != src.key {
				names = append(names, src)
			}
		}
		out = append(out, loadedImage{img: img, digest: digest.String(), kind: kindOCI, names: names})
	}
	if len(out) == 0 {
		return nil, errors.New("index.json lists no image")
	}
	return out, nil
}

// extractLayout unpacks the regular files and directories of a checked
// archive into dir (symlinks are not part of an OCI layout and are
// skipped), through an os.Root so that nothing lands outside dir.
func extractLayout(spool, dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	f, err := os.Open(spool)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(bufio.NewReader(f))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("corrupt archive: %w", err)
		}
		clean, err := archiveName(h.Name)
		if err != nil {
			return err
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := root.MkdirAll(clean, 0o700); err != nil {
				return err
			}
		case tar.TypeReg:
			if d := path.Dir(clean); d != "." {
				if err := root.MkdirAll(d, 0o700); err != nil {
					return err
				}
			}
			w, err := root.OpenFile(clean, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
			if err != nil {
				return err
			}
			_, err = io.Copy(w, tr)
			if err = closeAll(err, w); err != nil {
				return err
			}
		}
	}
}

var _ sandbox.ImageArchiver = (*Store)(nil)

// LoadArchive is Load as a sandbox.ImageArchiver.
func (s *Store) LoadArchive(ctx context.Context, r io.Reader, tags []string, size int64, progress func(boxapi.PullProgress)) ([]boxapi.ImageInfo, error) {
	return s.Load(ctx, r, LoadOptions{Tags: tags, Size: size}, progress)
}
