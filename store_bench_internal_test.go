package boxrun

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// BenchmarkStore_AppendEvents measures how fast exec output is stored: 64
// KiB chunks in batches of 16, against writing the same bytes to a plain
// file (the bare baseline) in the same run.
func BenchmarkStore_AppendEvents(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	s, err := openStore(ctx, filepath.Join(dir, "boxrun.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.close()
	chunk := strings.Repeat("x", 64<<10)
	const perOp = 16
	f, err := os.Create(filepath.Join(dir, "bare"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	b.SetBytes(int64(len(chunk) * perOp))
	var lib, bare time.Duration
	seq := int64(0)
	for range b.N {
		batch := make([]ExecEvent, perOp)
		for i := range batch {
			batch[i] = ExecEvent{ExecID: "exec_bench", Seq: seq, Kind: KindLog, Stream: "stdout", Data: chunk, CreatedAt: time.Now()}
			seq++
		}
		start := time.Now()
		if err := s.appendEvents(ctx, batch); err != nil {
			b.Fatal(err)
		}
		lib += time.Since(start)
		start = time.Now()
		for range perOp {
			if _, err := f.WriteString(chunk); err != nil {
				b.Fatal(err)
			}
		}
		bare += time.Since(start)
	}
	mbps := func(d time.Duration) float64 { return float64(len(chunk)*perOp*b.N) / d.Seconds() / (1 << 20) }
	b.ReportMetric(mbps(lib), "store-MB/s")
	b.ReportMetric(mbps(bare), "file-MB/s")
	b.ReportMetric(mbps(lib)/mbps(bare), "ratio")
}
