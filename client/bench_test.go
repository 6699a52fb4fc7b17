package client_test

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/boxrun/boxrun/boxapi"
)

// measure runs op b.N times and returns the total time.
func measure(b *testing.B, op func() error) time.Duration {
	b.Helper()
	start := time.Now()
	for range b.N {
		if err := op(); err != nil {
			b.Fatal(err)
		}
	}
	return time.Since(start)
}

// report records the remote time per op and its ratio to the in-process
// baseline measured in the same run.
func report(b *testing.B, local, remote time.Duration) {
	b.ReportMetric(float64(remote.Nanoseconds())/float64(b.N), "remote-ns/op")
	b.ReportMetric(float64(local.Nanoseconds())/float64(b.N), "local-ns/op")
	b.ReportMetric(float64(remote)/float64(local), "remote/local")
	b.ReportMetric(0, "ns/op") // the ratio is the result; ns/op mixes both loops
}

// BenchmarkExec: a blocking Exec of `true` (start, output over SSE, final
// record) through client → httpapi → Manager over loopback, against the
// same Exec on the Manager in process (fake driver).
func BenchmarkExec(b *testing.B) {
	c, m := newRemote(b)
	ctx := context.Background()
	box, err := m.Create(ctx, boxapi.BoxSpec{Image: "busybox"})
	if err != nil {
		b.Fatal(err)
	}
	req := boxapi.ExecRequest{Cmd: []string{"true"}}
	exec := func(svc boxapi.Service) func() error {
		return func() error { _, err := svc.Exec(ctx, box.ID, req, io.Discard, io.Discard); return err }
	}
	b.ResetTimer()
	local := measure(b, exec(m))
	remote := measure(b, exec(c))
	report(b, local, remote)
}

// BenchmarkUploadDownload: a 4 MiB UploadFile + DownloadFile round trip,
// remote against in process.
func BenchmarkUploadDownload(b *testing.B) {
	c, m := newRemote(b)
	ctx := context.Background()
	box, err := m.Create(ctx, boxapi.BoxSpec{Image: "busybox"})
	if err != nil {
		b.Fatal(err)
	}
	data := bytes.Repeat([]byte("0123456789abcdef"), 4<<20/16)
	trip := func(svc boxapi.Service) func() error {
		return func() error {
			if err := svc.UploadFile(ctx, box.ID, "/root/blob", bytes.NewReader(data)); err != nil {
				return err
			}
			return svc.DownloadFile(ctx, box.ID, "/root/blob", io.Discard)
		}
	}
	b.ResetTimer()
	local := measure(b, trip(m))
	remote := measure(b, trip(c))
	report(b, local, remote)
	b.ReportMetric(float64(2*len(data)*b.N)/remote.Seconds()/1e6, "remote-MB/s")
}
