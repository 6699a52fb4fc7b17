package gvisor_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/boxrun/boxrun/boxruntest"
	"github.com/boxrun/boxrun/driver/gvisor"
	"github.com/boxrun/boxrun/internal/testinet"
	"github.com/boxrun/boxrun/sandbox"
)

// BenchmarkNetworkCreate: Create (to a running sandbox) of a networked box
// (namespace, veth, nftables table, resolver) vs a box without network, in
// the same run. Reports the ratio (target ≤ 1.2).
func BenchmarkNetworkCreate(b *testing.B) {
	d, _ := newDriver(b)
	img := &sandbox.Image{Rootfs: busyboxRootfs(b)}
	ctx := context.Background()
	var withNet, without time.Duration
	for range b.N {
		for _, network := range []bool{false, true} {
			start := time.Now()
			h, err := d.Create(ctx, sandbox.Spec{BoxID: "bench", Image: img, Network: network})
			if err != nil {
				b.Fatal(err)
			}
			el := time.Since(start)
			if network {
				withNet += el
			} else {
				without += el
			}
			if err := d.Remove(ctx, h); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(withNet.Milliseconds())/float64(b.N), "net-ms/op")
	b.ReportMetric(float64(without.Milliseconds())/float64(b.N), "nonet-ms/op")
	b.ReportMetric(float64(withNet)/float64(without), "ratio")
}

// BenchmarkNetworkPath: TCP throughput, connect latency and DNS latency of
// a networked box vs the bare host, same run (see boxruntest.BenchNetwork).
func BenchmarkNetworkPath(b *testing.B) {
	in := testinet.New(b)
	dir := filepath.Join(b.TempDir(), "gvisor")
	d, err := gvisor.New(gvisor.Config{Dir: dir, DNS: []string{in.DNS}})
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		d.Close()
		d2, err := gvisor.New(gvisor.Config{Dir: dir})
		if err == nil {
			d2.Prune(context.Background(), nil)
			d2.Close()
		}
	}()
	boxruntest.BenchNetwork(b, d, in, &sandbox.Image{Rootfs: busyboxRootfs(b)})
}
