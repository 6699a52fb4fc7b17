package boxruntest

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/internal/testinet"
	"github.com/boxrun/boxrun/sandbox"
)

// BenchNetwork measures a networked box of d against the bare host, in the
// same run, with the same static probe (internal/testinet/netprobe) on
// both sides, toward the test internet in (whose DNS server d's resolver
// must forward to): TCP throughput (64 MiB from the internet), connect
// latency (connect+close) and DNS lookup latency (the box through its
// policy resolver on the gateway, the host straight at the internet's
// server). It reports each side and the ratio box/bare (1 = as fast as the
// host; for throughput, bare MB/s over box MB/s, so higher is slower
// too). The probe reaches the box as a read-only volume.
func BenchNetwork(b *testing.B, d sandbox.Driver, in *testinet.Internet, img *sandbox.Image) {
	nd, ok := d.(sandbox.NetworkDriver)
	if !ok {
		b.Fatalf("driver %s has no network", d.Name())
	}
	probeDir := testinet.BuildProbe(b)
	in.ServeBench(b)
	ctx := context.Background()
	var env []string
	if img != nil {
		env = img.Config.Env
	}
	h, err := d.Create(ctx, sandbox.Spec{BoxID: "bench-net", Image: img, CPU: 1, MemoryMB: 256, DiskSizeGB: 1, Env: env,
		Network: true, Volumes: []boxrun.Volume{{HostPath: probeDir, GuestPath: "/probe", Readonly: true}}})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Remove(context.Background(), h)
	info, err := nd.NetInfo(ctx, h)
	if err != nil {
		b.Fatal(err)
	}
	gen := net.JoinHostPort(in.Addr.String(), strconv.Itoa(testinet.ChargenPort))
	sink := net.JoinHostPort(in.Addr.String(), strconv.Itoa(testinet.SinkPort))
	const conns, lookups = 200, 200
	probes := []struct {
		name      string
		box, bare []string
	}{
		{"tcp", []string{"tcp", gen}, []string{"tcp", gen}},
		{"connect", []string{"connect", sink, strconv.Itoa(conns)}, []string{"connect", sink, strconv.Itoa(conns)}},
		{"dns", []string{"dns", net.JoinHostPort(info.Gateway, "53"), testinet.AllowedName, strconv.Itoa(lookups)},
			[]string{"dns", in.DNS, testinet.AllowedName, strconv.Itoa(lookups)}},
	}
	boxSum := map[string]float64{}
	bareSum := map[string]float64{}
	b.ResetTimer()
	for range b.N {
		for _, p := range probes {
			r := Run(b, d, h, sandbox.ProcessSpec{Cmd: append([]string{"/probe/" + testinet.ProbeName}, p.box...), Dir: "/"}, 5*time.Minute)
			if r.Code != 0 {
				b.Fatalf("probe %v in the box: exit %d: %s", p.box, r.Code, r.Stderr)
			}
			br, err := testinet.ParseProbe([]byte(r.Stdout))
			if err != nil {
				b.Fatal(err)
			}
			out, err := exec.Command(filepath.Join(probeDir, testinet.ProbeName), p.bare...).Output()
			if err != nil {
				b.Fatalf("probe %v on the host: %v", p.bare, err)
			}
			hr, err := testinet.ParseProbe(out)
			if err != nil {
				b.Fatal(err)
			}
			boxSum[p.name] += br.Seconds
			bareSum[p.name] += hr.Seconds
		}
	}
	b.StopTimer()
	n := float64(b.N)
	mb := float64(testinet.ChargenBytes) / (1 << 20)
	b.ReportMetric(mb/(boxSum["tcp"]/n), "box-MB/s")
	b.ReportMetric(mb/(bareSum["tcp"]/n), "bare-MB/s")
	b.ReportMetric(boxSum["tcp"]/bareSum["tcp"], "tcp-ratio")
	b.ReportMetric(boxSum["connect"]/n*1e6, "box-connect-us")
	b.ReportMetric(bareSum["connect"]/n*1e6, "bare-connect-us")
	b.ReportMetric(boxSum["connect"]/bareSum["connect"], "connect-ratio")
	b.ReportMetric(boxSum["dns"]/n*1e6, "box-dns-us")
	b.ReportMetric(bareSum["dns"]/n*1e6, "bare-dns-us")
	b.ReportMetric(boxSum["dns"]/bareSum["dns"], "dns-ratio")
	b.Logf("%s: %s", d.Name(), fmt.Sprint(boxSum, bareSum))
}
