package image

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/sandbox"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/sync/errgroup"
)

// Pull resolves ref and makes its rootfs ready, fetching and unpacking only
// what is not cached, and returns the image. ref is one of:
//
//	alpine, ubuntu:24.04, host:5000/x/y:tag, …@sha256:…   a registry image
//	oci:/path/to/layout[:tag|@sha256:…]                    an OCI image layout
//	docker-archive:/path/to/image.tar[:repo:tag]            a `docker save` tarball
//	dir:/path/to/rootfs                                     an unpacked rootfs, used in place
//
// Registry names are normalized as Docker does (alpine is
// index.docker.io/library/alpine:latest); multi-arch images resolve to the
// Store's platform. A cached tag is checked against the registry with one
// HEAD request (see WithPullPolicy); when the registry cannot be reached at
// all, the cached image is used. Digest references and local sources need
// no registry once cached.
//
// progress, when non-nil, receives each layer's bytes done and total, with
// Cached set for layers already in the cache. Calls are serialized and must
// not block. Concurrent Pulls of one reference share one pull.
//
// Errors are *boxapi.Error values: IMAGE_PULL_FAILED (matching
// boxapi.ErrImagePull) with the registry's reason in the message, or
// CANCELED/TIMEOUT when ctx ends first.
func (s *Store) Pull(ctx context.Context, ref string, progress func(boxapi.PullProgress)) (*sandbox.Image, error) {
	return s.PullWith(ctx, ref, PullOptions{}, progress)
}

// PullOptions adjusts one pull.
type PullOptions struct {
	// Policy overrides the Store's pull policy (WithPullPolicy) for this
	// pull; "" keeps it. Under the Store's policy, names given by Load or
	// Tag are never checked against a registry; an explicit PullAlways
	// checks them too.
	Policy PullPolicy
}

// ErrNotCached is wrapped by the error of a PullNever pull of a reference
// that is not cached.
var ErrNotCached = errors.New("not in the image store and the pull policy is never: add it with `boxrun images load` (or `boxrun images pull`)")

// PullWith is Pull with options.
func (s *Store) PullWith(ctx context.Context, ref string, o PullOptions, progress func(boxapi.PullProgress)) (*sandbox.Image, error) {
	if s.closed() {
		return nil, s.closedError(ref)
	}
	if _, err := ParsePullPolicy(string(o.Policy)); err != nil {
		return nil, pullError(ref, err)
	}
	src, err := parseRef(ref, s.nameOpts())
	if err != nil {
		return nil, pullError(ref, err)
	}
	if src.kind == kindDir {
		if !isDir(src.path) {
			return nil, pullError(ref, fmt.Errorf("%s is not a directory", src.path))
		}
		return &sandbox.Image{Ref: ref, Rootfs: src.path}, nil
	}
	img, err := s.flights.do(ctx, s.ctx, src.key+"\x00"+string(o.Policy), progress, s.startFlight, s.wg.Done,
		func(ctx context.Context, report func(boxapi.PullProgress)) (*sandbox.Image, error) {
			return s.pull(ctx, src, o, report)
		})
	if err != nil {
		if s.closed() && ctx.Err() == nil {
			return nil, s.closedError(ref)
		}
		return nil, pullError(ref, err)
	}
	img.Ref = ref
	return img, nil
}

func (s *Store) startFlight() bool {
	if s.closed() {
		return false
	}
	s.wg.Add(1)
	return true
}

func (s *Store) closedError(ref string) error {
	return &boxapi.Error{Code: boxapi.CodeImagePullFailed,
		Message: fmt.Sprintf("Failed to pull image '%s': image store closed", ref), Err: boxapi.ErrClosed}
}

func (s *Store) nameOpts() []name.Option {
	if s.opts.insecure {
		return []name.Option{name.Insecure}
	}
	return nil
}

func (s *Store) remoteOpts(ctx context.Context) []remote.Option {
	opts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(s.opts.keychain),
		remote.WithPlatform(s.opts.platform),
		remote.WithUserAgent("boxrun"),
	}
	if s.opts.transport != nil {
		opts = append(opts, remote.WithTransport(s.opts.transport))
	}
	return append(opts, s.opts.remote...)
}

// pull runs in a flight: one per reference at a time.
func (s *Store) pull(ctx context.Context, src *source, o PullOptions, report func(boxapi.PullProgress)) (*sandbox.Image, error) {
	s.gcMu.RLock()
	defer s.gcMu.RUnlock()
	switch src.kind {
	case kindRegistry:
		return s.pullRegistry(ctx, src, o.Policy, report)
	default:
		return s.pullLocal(ctx, src, report)
	}
}

func (s *Store) pullRegistry(ctx context.Context, src *source, policy PullPolicy, report func(boxapi.PullProgress)) (*sandbox.Image, error) {
	ropts := s.remoteOpts(ctx)
	if img, ok := s.cachedRegistry(ctx, src, policy, ropts, report); ok {
		return img, nil
	}
	if policy == PullNever || policy == "" && s.opts.policy == PullNever {
		return nil, ErrNotCached
	}
	var desc *remote.Descriptor
	ep, err := s.tryEndpoints(ctx, src.ref, func(ep endpoint) error {
		d, err := remote.Get(ep.ref, ropts...)
		desc = d
		return err
	})
	if err != nil {
		return nil, err
	}
	if ep.mirror {
		s.log.Info("image: pulled through a mirror", "ref", src.given, "mirror", ep.name)
	}
	img, err := desc.Image() // an index resolves to the Store's platform
	if err != nil {
		return nil, err
	}
	digest, err := img.Digest()
	if err != nil {
		return nil, err
	}
	out, err := s.build(ctx, src, desc.Digest.String(), digest.String(), kindRegistry, img, ep.name, report)
	if out != nil {
		out.Endpoint = ep.name
	}
	return out, err
}

// cachedRegistry returns the cached image of a registry reference when it
// is still current.
func (s *Store) cachedRegistry(ctx context.Context, src *source, policy PullPolicy, ropts []remote.Option, report func(boxapi.PullProgress)) (*sandbox.Image, bool) {
	idx, err := s.index.read()
	if err != nil {
		return nil, false
	}
	platform := s.opts.platform.String()
	if d, ok := src.ref.(name.Digest); ok {
		// Pinned: any cached image with this digest will do.
		want := d.DigestStr()
		for _, r := range idx.Refs {
			if r.Platform == platform && (r.Remote == want || r.Digest == want) {
				return s.ready(ctx, src, want, idx.Images[r.Digest], report)
			}
		}
		return s.ready(ctx, src, want, idx.Images[want], report)
	}
	r := idx.Refs[src.key]
	if r == nil || r.Platform != platform || idx.Images[r.Digest] == nil {
		return nil, false
	}
	if policy == "" {
		policy = s.opts.policy
		if r.Local {
			policy = PullMissing // loaded or tagged here: no registry has it
		}
	}
	if policy != PullAlways {
		return s.ready(ctx, src, r.Remote, idx.Images[r.Digest], report)
	}
	var head *v1.Descriptor
	_, err = s.tryEndpoints(ctx, src.ref, func(ep endpoint) error {
		h, err := remote.Head(ep.ref, ropts...)
		head = h
		return err
	})
	switch {
	case err == nil && head.Digest.String() == r.Remote:
	case err != nil && !isRegistryAnswer(err) && ctx.Err() == nil:
		s.log.Warn("image: registry unreachable, using the cached image", "ref", src.given, "err", err)
	default:
		return nil, false
	}
	return s.ready(ctx, src, r.Remote, idx.Images[r.Digest], report)
}

// ready returns img if its rootfs is in place, recording src as a name of
// it. It reports every layer as cached.
func (s *Store) ready(ctx context.Context, src *source, remoteDigest string, e *imageEntry, report func(boxapi.PullProgress)) (*sandbox.Image, bool) {
	if e == nil {
		return nil, false
	}
	chain, err := v1.NewHash(e.ChainID)
	if err != nil || !isDir(s.rootfsPath(chain)) {
		return nil, false
	}
	for _, l := range e.Layers {
		id := l.Digest
		if id == "" {
			id = l.DiffID
		}
		report(boxapi.PullProgress{Ref: src.given, Layer: id, Done: l.Size, Total: l.Size, Cached: true})
	}
	if err := s.recordRef(src, remoteDigest, e, "", false); err != nil {
		s.log.Warn("image: record reference", "ref", src.given, "err", err)
	}
	return &sandbox.Image{Ref: src.given, Digest: e.Digest, Remote: remoteDigest, Rootfs: s.rootfsPath(chain), Config: e.Config}, true
}

// recordRef points src at image e in the index (adding e if add is set).
// endpoint is what served the pull ("" keeps what the index says).
func (s *Store) recordRef(src *source, remoteDigest string, e *imageEntry, endpoint string, add bool) error {
	idx, err := s.index.read()
	if err == nil && !add {
		if r := idx.Refs[src.key]; r != nil && r.Digest == e.Digest && r.Remote == remoteDigest && idx.Images[e.Digest] != nil {
			return nil // nothing new: spare the write
		}
	}
	now := time.Now().UTC()
	return s.index.update(func(x *index) error {
		if add || x.Images[e.Digest] == nil {
			if old := x.Images[e.Digest]; old != nil {
				e.Pulled = old.Pulled
			}
			x.Images[e.Digest] = e
		}
		display := src.given
		old := x.Refs[src.key]
		local := false
		if old != nil {
			display = old.Ref
			if endpoint == "" && old.Digest == e.Digest {
				endpoint, local = old.Endpoint, old.Local
			}
		}
		x.Refs[src.key] = &refEntry{Ref: display, Digest: e.Digest, Remote: remoteDigest,
			Platform: s.opts.platform.String(), Pulled: now, Endpoint: endpoint, Local: local}
		return nil
	})
}

// build fetches and unpacks the layers of img, builds its rootfs and
// records it under src.
func (s *Store) build(ctx context.Context, src *source, remoteDigest, digest string, kind sourceKind, img v1.Image, endpoint string, report func(boxapi.PullProgress)) (*sandbox.Image, error) {
	e, rootfs, err := s.importImage(ctx, src.given, digest, kind, img, report)
	if err != nil {
		return nil, err
	}
	if err := s.recordRef(src, remoteDigest, e, endpoint, true); err != nil {
		return nil, err
	}
	return &sandbox.Image{Ref: src.given, Digest: e.Digest, Remote: remoteDigest, Rootfs: rootfs, Config: e.Config}, nil
}

// importImage fetches and unpacks the layers of img, keeps its config and
// layer blobs (for Save) and builds its rootfs. It records nothing in the
// index: what it writes is content-addressed, and unreferenced until the
// caller records a name for it.
func (s *Store) importImage(ctx context.Context, label, digest string, kind sourceKind, img v1.Image, report func(boxapi.PullProgress)) (*imageEntry, string, error) {
	e, jobs, err := s.describe(label, digest, kind, img)
	if err != nil {
		return nil, "", err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.opts.jobs)
	for _, j := range jobs {
		g.Go(func() error { return s.ensureLayer(gctx, j, report) })
	}
	if err := g.Wait(); err != nil {
		return nil, "", err
	}
	if _, err := s.keepConfig(img); err != nil {
		return nil, "", err
	}
	rootfs, err := s.ensureRootfs(e)
	if err != nil {
		return nil, "", err
	}
	return e, rootfs, nil
}

// describe makes the index entry of img and the jobs that fetch its layers.
func (s *Store) describe(label, digest string, kind sourceKind, img v1.Image) (*imageEntry, []*layerJob, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, nil, fmt.Errorf("read config: %w", err)
	}
	configDigest, err := img.ConfigName() // checked by keepConfig
	if err != nil {
		return nil, nil, fmt.Errorf("read config: %w", err)
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, nil, fmt.Errorf("read layers: %w", err)
	}
	e := &imageEntry{
		Digest:       digest,
		Source:       string(kind),
		ConfigDigest: configDigest.String(),
		Config:       imageConfig(cf),
		Created:      cf.Created.Time.UTC(),
		Pulled:       time.Now().UTC(),
	}
	var jobs []*layerJob
	diffIDs := make([]v1.Hash, 0, len(layers))
	for _, l := range layers {
		diffID, err := l.DiffID()
		if err != nil {
			return nil, nil, fmt.Errorf("layer diff ID: %w", err)
		}
		j := &layerJob{ref: label, diffID: diffID, open: l.Uncompressed, cache: true}
		if kind == kindArchive {
			// Kept as they come (uncompressed), under their diff ID.
			j.digest = diffID
		} else {
			// docker save tarballs hold uncompressed layers: their digest
			// and size would mean compressing them, so they go by diff ID.
			if j.digest, err = l.Digest(); err != nil {
				return nil, nil, fmt.Errorf("layer digest: %w", err)
			}
			if j.size, err = l.Size(); err != nil {
				return nil, nil, fmt.Errorf("layer size: %w", err)
			}
			j.open, j.compressed = l.Compressed, true
			j.verifies = kind == kindRegistry
		}
		jobs = append(jobs, j)
		diffIDs = append(diffIDs, diffID)
		e.Layers = append(e.Layers, layerEntry{DiffID: diffID.String(), Digest: digestString(j.digest), Size: j.size,
			MediaType: mediaType(l)})
		e.Size += j.size
	}
	e.ChainID = chainID(diffIDs).String()
	return e, jobs, nil
}

// imageConfig is the part of an image's (untrusted) config that boxes use.
func imageConfig(cf *v1.ConfigFile) sandbox.ImageConfig {
	return sandbox.ImageConfig{
		Env:        cf.Config.Env,
		WorkingDir: cf.Config.WorkingDir,
		Entrypoint: cf.Config.Entrypoint,
		Cmd:        cf.Config.Cmd,
		User:       cf.Config.User,
	}
}

// keepConfig stores the raw config of img as a blob (for Save) and
// returns its digest, checked.
func (s *Store) keepConfig(img v1.Image) (string, error) {
	raw, err := img.RawConfigFile()
	if err != nil {
		return "", fmt.Errorf("read config: %w", err)
	}
	h, _, err := v1.SHA256(bytes.NewReader(raw))
	if err != nil {
		return "", err
	}
	if want, err := img.ConfigName(); err != nil || want != h {
		return "", fmt.Errorf("%w: config %s has digest %s", errDigest, want, h)
	}
	p := s.blobPath(h)
	if _, err := os.Stat(p); err == nil {
		return h.String(), nil
	}
	f, err := os.CreateTemp(s.tmp, "config-")
	if err != nil {
		return "", err
	}
	_, err = f.Write(raw)
	err = closeAll(err, f)
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(f.Name(), p)
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("keep config: %w", err)
	}
	return h.String(), nil
}

// mediaType is the media type of l, "" if it does not say.
func mediaType(l v1.Layer) string {
	mt, err := l.MediaType()
	if err != nil {
		return ""
	}
	return string(mt)
}

func digestString(h v1.Hash) string {
	if h.Hex == "" {
		return ""
	}
	return h.String()
}

// ensureRootfs builds the rootfs of e from its unpacked layers, once.
func (s *Store) ensureRootfs(e *imageEntry) (string, error) {
	chain, err := v1.NewHash(e.ChainID)
	if err != nil {
		return "", err
	}
	dst := s.rootfsPath(chain)
	if isDir(dst) {
		return dst, nil
	}
	_, err, _ = s.rootfsSF.Do(chain.String(), func() (any, error) {
		if isDir(dst) {
			return nil, nil
		}
		tmp, err := os.MkdirTemp(s.tmp, "rootfs-")
		if err != nil {
			return nil, err
		}
		m := &merger{root: tmp, isRoot: s.isRoot}
		for _, l := range e.Layers {
			h, err := v1.NewHash(l.DiffID)
			if err != nil {
				removeAll(tmp)
				return nil, err
			}
			if err := s.applyLayer(m, h); err != nil {
				removeAll(tmp)
				return nil, fmt.Errorf("apply layer %s: %w", l.DiffID, err)
			}
		}
		if err := os.Chmod(tmp, 0o755); err != nil {
			removeAll(tmp)
			return nil, err
		}
		return nil, renameDir(tmp, dst)
	})
	if err != nil {
		return "", err
	}
	return dst, nil
}

// closeAll closes rc and reports the first error.
func closeAll(err error, c io.Closer) error {
	if cerr := c.Close(); err == nil && cerr != nil && !errors.Is(cerr, os.ErrClosed) {
		return cerr
	}
	return err
}

var _ sandbox.PolicyPuller = (*Store)(nil)

// PullWithPolicy is PullWith with the policy by name ("" for the Store's
// own): the sandbox.PolicyPuller the Manager uses.
func (s *Store) PullWithPolicy(ctx context.Context, ref, policy string, progress func(boxapi.PullProgress)) (*sandbox.Image, error) {
	return s.PullWith(ctx, ref, PullOptions{Policy: PullPolicy(policy)}, progress)
}
