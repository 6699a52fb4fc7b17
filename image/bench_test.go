package image_test

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/boxrun/boxrun/image/imagetest"
	"github.com/google/go-containerregistry/pkg/crane"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// BenchmarkPull pulls and unpacks a 100 MB image (4 layers of 25 MB of
// incompressible data) from an in-process registry into a fresh Store, and
// in the same iteration does the bare minimum by hand as a baseline:
// crane.Pull and a plain archive/tar extraction of each layer into a
// directory. It reports both throughputs, their ratio (store/baseline, 1 =
// as fast as the baseline), and the time of a second Pull of the same image
// on the warm Store against the first.
func BenchmarkPull(b *testing.B) {
	const layers, size = 4, 25 << 20
	host := imagetest.Registry(b)
	var ls []v1.Layer
	for i := range layers {
		ls = append(ls, imagetest.RandomLayer(b, fmt.Sprintf("data/%d.bin", i), size, uint64(i+1)))
	}
	ref := imagetest.Push(b, host, "bench:100mb", imagetest.Image(b, v1.Config{}, ls...))
	mb := float64(layers*size) / 1e6
	ctx := context.Background()

	var base, first, second time.Duration
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		work := b.TempDir()
		b.StartTimer()

		// Alternate which goes first, so neither always pays for the
		// other's writeback.
		runBase := func() {
			t0 := time.Now()
			if err := baselinePull(ref, filepath.Join(work, "baseline")); err != nil {
				b.Fatal(err)
			}
			base += time.Since(t0)
		}
		if i%2 == 0 {
			runBase()
		}
		s := MustOpenDir(b, filepath.Join(work, "store"))
		t0 := time.Now()
		if _, err := s.Pull(ctx, ref, nil); err != nil {
			b.Fatal(err)
		}
		first += time.Since(t0)
		t0 = time.Now()
		if _, err := s.Pull(ctx, ref, nil); err != nil {
			b.Fatal(err)
		}
		second += time.Since(t0)
		if i%2 == 1 {
			runBase()
		}

		b.StopTimer()
		s.Close()
		os.RemoveAll(work)
		b.StartTimer()
	}
	n := float64(b.N)
	b.ReportMetric(mb*n/base.Seconds(), "baseline-MB/s")
	b.ReportMetric(mb*n/first.Seconds(), "store-MB/s")
	b.ReportMetric(base.Seconds()/first.Seconds(), "store/baseline")
	b.ReportMetric(float64(second.Microseconds())/n/1000, "second-pull-ms")
	b.ReportMetric(second.Seconds()/first.Seconds(), "second/first")
}

// baselinePull is the bare minimum a pull does: fetch each layer and
// extract its tar, without caching, verification beyond crane's own, or
// safety checks.
func baselinePull(ref, dir string) error {
	img, err := crane.Pull(ref)
	if err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			return err
		}
		err = extract(tar.NewReader(rc), dir)
		rc.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

func extract(tr *tar.Reader, dir string) error {
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		p := filepath.Join(dir, hdr.Name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, os.FileMode(hdr.Mode).Perm())
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		}
	}
}
