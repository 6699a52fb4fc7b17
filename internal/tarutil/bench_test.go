package tarutil_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/boxrun/boxrun/internal/tarutil"
)

// benchTree is 64 files of 256 KiB (16 MiB) in 4 directories.
func benchTree(b *testing.B) (src string, files map[string][]byte) {
	b.Helper()
	src = filepath.Join(b.TempDir(), "src")
	files = map[string][]byte{}
	body := randomBytes(b, 256<<10)
	for i := range 64 {
		name := fmt.Sprintf("d%d/f%02d", i%4, i)
		files[name] = body
		mustWrite(b, filepath.Join(src, name), string(body))
	}
	return src, files
}

// BenchmarkExtract compares Extract with the baseline of writing the same
// files with os.WriteFile (no tar, no checks): the ratio is the cost of
// tar decoding plus confinement.
func BenchmarkExtract(b *testing.B) {
	src, files := benchTree(b)
	var archive bytes.Buffer
	if err := tarutil.Create(context.Background(), &archive, src); err != nil {
		b.Fatal(err)
	}
	b.Run("Baseline", func(b *testing.B) {
		b.SetBytes(16 << 20)
		for i := 0; b.Loop(); i++ {
			dst := filepath.Join(b.TempDir(), fmt.Sprint(i))
			for name, body := range files {
				p := filepath.Join(dst, "src", name)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					b.Fatal(err)
				}
				if err := os.WriteFile(p, body, 0o644); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("Extract", func(b *testing.B) {
		b.SetBytes(16 << 20)
		for i := 0; b.Loop(); i++ {
			dst := filepath.Join(b.TempDir(), fmt.Sprint(i))
			if err := tarutil.Extract(context.Background(), bytes.NewReader(archive.Bytes()), dst); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkCreate compares Create with the baseline of reading the same
// files with os.ReadFile.
func BenchmarkCreate(b *testing.B) {
	src, files := benchTree(b)
	b.Run("Baseline", func(b *testing.B) {
		b.SetBytes(16 << 20)
		for b.Loop() {
			for name := range files {
				if _, err := os.ReadFile(filepath.Join(src, name)); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("Create", func(b *testing.B) {
		b.SetBytes(16 << 20)
		var buf bytes.Buffer
		for b.Loop() {
			buf.Reset()
			if err := tarutil.Create(context.Background(), &buf, src); err != nil {
				b.Fatal(err)
			}
		}
	})
}
