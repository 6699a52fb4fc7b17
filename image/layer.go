package image

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/boxrun/boxrun/boxapi"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// layerJob is one layer of an image to make available.
type layerJob struct {
	ref        string  // the reference being pulled, for progress
	diffID     v1.Hash // digest of the tar stream: the layer's identity in the cache
	digest     v1.Hash // digest of the blob as stored (compressed); zero if unknown
	size       int64   // bytes of the blob; 0 if unknown
	compressed bool    // open returns the blob as stored, to be verified against digest
	cache      bool    // keep the blob under blobs/ (registry pulls)
	verifies   bool    // open's stream checks the digest itself, failing at EOF (go-containerregistry's remote)
	open       func() (io.ReadCloser, error)
}

func (j *layerJob) id() string {
	if j.digest.Hex != "" {
		return j.digest.String()
	}
	return j.diffID.String()
}

// ensureLayer makes the unpacked layer of j available, once however many
// pulls want it at the same time.
func (s *Store) ensureLayer(ctx context.Context, j *layerJob, report func(boxapi.PullProgress)) error {
	dst := s.layerPath(j.diffID)
	cached := func() {
		report(boxapi.PullProgress{Ref: j.ref, Layer: j.id(), Done: j.size, Total: j.size, Cached: true})
	}
	for {
		if isDir(dst) {
			cached()
			return nil
		}
		leader := false
		_, err, _ := s.layerSF.Do(j.diffID.String(), func() (any, error) {
			leader = true
			if isDir(dst) {
				return nil, nil
			}
			return nil, s.fetchLayer(ctx, j, report)
		})
		if err != nil && !leader && ctx.Err() == nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
			continue // the pull we waited for gave up; try ourselves
		}
		if err == nil && !leader {
			cached()
		}
		return err
	}
}

// fetchLayer unpacks j into the cache. A registry blob already cached is
// used if it verifies; if it does not (corrupt, truncated) it is deleted and
// fetched again.
func (s *Store) fetchLayer(ctx context.Context, j *layerJob, report func(boxapi.PullProgress)) error {
	report(boxapi.PullProgress{Ref: j.ref, Layer: j.id(), Total: j.size})
	if j.cache {
		blob := s.blobPath(j.digest)
		if f, err := os.Open(blob); err == nil {
			tmp, err := s.unpackLayer(ctx, f, j, nil, true, report)
			f.Close()
			if err == nil {
				return s.commitLayer(tmp, j, "", "")
			}
			if ctx.Err() != nil {
				return err
			}
			s.log.Warn("image: cached blob unusable, fetching it again", "digest", j.digest, "err", err)
			if err := os.Remove(blob); err != nil {
				return err
			}
		}
	}
	rc, err := j.open()
	if err != nil {
		return err
	}
	var blobFile *os.File
	if j.cache {
		if blobFile, err = os.CreateTemp(s.tmp, "blob-"); err != nil {
			rc.Close()
			return err
		}
	}
	var w io.Writer
	if blobFile != nil {
		w = blobFile
	}
	tmp, err := s.unpackLayer(ctx, rc, j, w, !j.verifies, report)
	err = closeAll(err, rc)
	if blobFile != nil {
		err = closeAll(err, blobFile)
		if err != nil {
			os.Remove(blobFile.Name())
			if tmp != "" {
				removeAll(tmp)
			}
			return err
		}
		return s.commitLayer(tmp, j, blobFile.Name(), s.blobPath(j.digest))
	}
	if err != nil {
		return err
	}
	return s.commitLayer(tmp, j, "", "")
}

// commitLayer renames a finished blob and unpacked layer into place.
func (s *Store) commitLayer(tmp string, j *layerJob, blobTmp, blob string) error {
	if blobTmp != "" {
		if err := os.Rename(blobTmp, blob); err != nil {
			removeAll(tmp)
			return err
		}
	}
	return renameDir(tmp, s.layerPath(j.diffID))
}

// unpackLayer reads a layer stream once: it hashes it (unless verify is
// false: the stream does that itself) and the tar inside it, copies it to
// blob when non-nil, and unpacks the tar into a new work directory, which it
// returns. Any digest mismatch fails it (errDigest), so unverified content
// never reaches the cache.
func (s *Store) unpackLayer(ctx context.Context, r io.Reader, j *layerJob, blob io.Writer, verify bool, report func(boxapi.PullProgress)) (string, error) {
	tmp, err := os.MkdirTemp(s.tmp, "layer-")
	if err != nil {
		return "", err
	}
	meta, err := s.unpackInto(ctx, tmp, r, j, blob, verify, report)
	if err == nil {
		var b []byte
		if b, err = json.Marshal(meta); err == nil {
			err = os.WriteFile(filepath.Join(tmp, "meta.json"), b, 0o644)
		}
	}
	if err == nil {
		err = os.Chmod(tmp, 0o755)
	}
	if err != nil {
		removeAll(tmp)
		return "", err
	}
	return tmp, nil
}

func (s *Store) unpackInto(ctx context.Context, tmp string, r io.Reader, j *layerJob, blob io.Writer, verify bool, report func(boxapi.PullProgress)) (*layerMeta, error) {
	fsDir := filepath.Join(tmp, "fs")
	if err := os.Mkdir(fsDir, 0o755); err != nil {
		return nil, err
	}
	pr := &progressReader{ctx: ctx, r: r, report: report, p: boxapi.PullProgress{Ref: j.ref, Layer: j.id(), Total: j.size}}
	var in io.Reader = pr
	var blobHash hash.Hash
	var w []io.Writer
	if j.compressed && verify {
		blobHash = sha256.New()
		w = append(w, blobHash)
	}
	if blob != nil {
		w = append(w, blob)
	}
	if len(w) > 0 {
		in = io.TeeReader(in, io.MultiWriter(w...))
	}
	br := bufio.NewReaderSize(in, 256<<10)
	dr, err := decompress(br)
	if err != nil {
		return nil, err
	}
	defer dr.Close()
	tarHash := sha256.New()
	tr := io.TeeReader(dr, tarHash)
	meta, err := unpackTar(ctx, tr, fsDir, s.isRoot)
	if err != nil {
		return nil, err
	}
	// Hash what follows the end of the archive too (padding), and read the
	// blob to its end so that both digests cover everything.
	if _, err := io.Copy(io.Discard, tr); err != nil {
		return nil, fmt.Errorf("read layer: %w", err)
	}
	if _, err := io.Copy(io.Discard, br); err != nil {
		return nil, fmt.Errorf("read layer: %w", err)
	}
	if blobHash != nil {
		if got := (v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", blobHash.Sum(nil))}); got != j.digest {
			return nil, fmt.Errorf("%w: blob %s has digest %s", errDigest, j.digest, got)
		}
	}
	if got := (v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", tarHash.Sum(nil))}); got != j.diffID {
		return nil, fmt.Errorf("%w: layer %s has diff ID %s", errDigest, j.diffID, got)
	}
	pr.done()
	meta.DiffID = j.diffID.String()
	meta.Digest = digestString(j.digest)
	meta.Size = j.size
	if meta.Size == 0 {
		meta.Size = pr.p.Done
	}
	return meta, nil
}

// decompress returns the tar stream inside r: r itself, or r gunzipped or
// zstd-decompressed, told apart by their magic numbers.
func decompress(r *bufio.Reader) (io.ReadCloser, error) {
	magic, err := r.Peek(4)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read layer: %w", err)
	}
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("read layer: %w", err)
		}
		return zr, nil
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, fmt.Errorf("read layer: %w", err)
		}
		return zr.IOReadCloser(), nil
	}
	return io.NopCloser(r), nil
}

// progressReader counts the bytes of a layer stream and reports them at
// most every progressEvery, and stops at once when ctx ends.
type progressReader struct {
	ctx    context.Context
	r      io.Reader
	report func(boxapi.PullProgress)
	p      boxapi.PullProgress
	last   time.Time
}

const progressEvery = 100 * time.Millisecond

func (pr *progressReader) Read(b []byte) (int, error) {
	if err := pr.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := pr.r.Read(b)
	pr.p.Done += int64(n)
	if time.Since(pr.last) >= progressEvery {
		pr.emit()
	}
	return n, err
}

func (pr *progressReader) emit() {
	pr.last = time.Now()
	pr.report(pr.p)
}

func (pr *progressReader) done() {
	if pr.p.Total == 0 {
		pr.p.Total = pr.p.Done
	}
	pr.p.Done = pr.p.Total
	pr.emit()
}

// chainID is the OCI chain ID of a stack of layers: the identity of the
// filesystem they make, whatever the images around them.
func chainID(diffIDs []v1.Hash) v1.Hash {
	h := sha256.New()
	var chain string
	for i, d := range diffIDs {
		if i == 0 {
			chain = d.String()
			continue
		}
		h.Reset()
		h.Write([]byte(chain + " " + d.String()))
		chain = fmt.Sprintf("sha256:%x", h.Sum(nil))
	}
	if chain == "" {
		h.Reset()
		chain = fmt.Sprintf("sha256:%x", h.Sum(nil))
	}
	out, _ := v1.NewHash(chain)
	return out
}

// applyLayer merges the unpacked layer diffID into m's root.
func (s *Store) applyLayer(m *merger, diffID v1.Hash) error {
	dir := s.layerPath(diffID)
	b, err := os.ReadFile(filepath.Join(dir, "meta.json"))
	if err != nil {
		return err
	}
	var meta layerMeta
	if err := json.Unmarshal(b, &meta); err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	return m.apply(filepath.Join(dir, "fs"), &meta)
}
