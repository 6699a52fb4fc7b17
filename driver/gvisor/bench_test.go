package gvisor_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/boxrun/boxrun/driver/gvisor"
	"github.com/boxrun/boxrun/sandbox"
)

// The benchmarks time the driver against bare runsc doing the same work in
// the same run, interleaved, and report both and their ratio:
//
//	box-ms/op, bare-ms/op, ratio  (time: lower is better; target ratio <= 1.2 exec, <= 1.3 create)
//	box-MB/s, bare-MB/s, ratio    (throughput: target ratio >= 0.8)

// firstLine signals on ch when the first write arrives.
type firstWrite struct{ ch chan struct{} }

func (f *firstWrite) Write(p []byte) (int, error) {
	select {
	case f.ch <- struct{}{}:
	default:
	}
	return len(p), nil
}

// BenchmarkCreate times Create + the first exec's output against a bare
// `runsc run` of the same command on the same rootfs, up to its output.
func BenchmarkCreate(b *testing.B) {
	d, _ := newDriver(b)
	rootfs := busyboxRootfs(b)
	img := &sandbox.Image{Ref: "busybox", Rootfs: rootfs}
	runsc, global := d.BareRunsc()
	bundles := b.TempDir()
	ctx := context.Background()
	var box, bare time.Duration
	b.ResetTimer()
	for i := range b.N {
		// Driver: create, exec, first output.
		start := time.Now()
		h, err := d.Create(ctx, sandbox.Spec{BoxID: "bench", Image: img, CPU: 1, MemoryMB: 256})
		if err != nil {
			b.Fatal(err)
		}
		fw := &firstWrite{ch: make(chan struct{}, 1)}
		p, err := d.Exec(ctx, h, sandbox.ProcessSpec{Cmd: []string{"echo", "hi"}, Stdout: fw})
		if err != nil {
			b.Fatal(err)
		}
		<-fw.ch
		box += time.Since(start)
		p.Wait()
		b.StopTimer()
		if err := d.Remove(ctx, h); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()

		// Bare: runsc run, first output.
		bare += bareRunFirstOutput(b, d, runsc, global, bundles, fmt.Sprintf("bare%012d", i), rootfs)
	}
	report(b, box, bare)
}

// BenchmarkExec times an exec round trip (start, output, exit) in a running
// box against a bare `runsc exec` of the same command in the same sandbox,
// and against the same exec with its output relayed in frames
// (relay-ms/op), interleaved; then the cost of one process start inside
// the box (inbox-spawn-ms, and spawn-ratio against bare: no exec path can
// go below it).
func BenchmarkExec(b *testing.B) {
	d, _ := newDriver(b)
	img := &sandbox.Image{Ref: "busybox", Rootfs: busyboxRootfs(b)}
	ctx := context.Background()
	h := create(b, d, sandbox.Spec{BoxID: "bench", Image: img, CPU: 1, MemoryMB: 256})
	runsc, global := d.BareRunsc()
	run := func(relay bool) time.Duration {
		d.SetRelayOutput(relay)
		defer d.SetRelayOutput(false)
		var out bytes.Buffer
		start := time.Now()
		p, err := d.Exec(ctx, h, sandbox.ProcessSpec{Cmd: []string{"echo", "hi"}, Stdout: &out})
		if err != nil {
			b.Fatal(err)
		}
		if code, err := p.Wait(); code != 0 || err != nil || out.String() != "hi\n" {
			b.Fatal(code, err, out.String())
		}
		return time.Since(start)
	}
	var box, relay, bare time.Duration
	b.ResetTimer()
	for range b.N {
		box += run(false)
		bare += bareExec(b, d.BareAttr(), runsc, global, h, []string{"echo", "hi"}, 3)
		relay += run(true)
	}
	report(b, box, bare)
	b.ReportMetric(float64(relay.Microseconds())/1000/float64(b.N), "relay-ms/op")
	// The floor under any exec path: one process start inside the
	// sandbox, timed in the box by a shell loop of 50 `echo hi` runs
	// (fork + exec + exit + wait each), against the same bare baseline.
	const loops = 50
	start := time.Now()
	p, err := d.Exec(ctx, h, sandbox.ProcessSpec{Cmd: []string{"sh", "-c",
		fmt.Sprintf("i=0; while [ $i -lt %d ]; do /bin/echo hi >/dev/null; i=$((i+1)); done", loops)}})
	if err != nil {
		b.Fatal(err)
	}
	if code, err := p.Wait(); code != 0 || err != nil {
		b.Fatal(code, err)
	}
	spawn := time.Since(start) / loops
	b.ReportMetric(float64(spawn.Microseconds())/1000, "inbox-spawn-ms")
	b.ReportMetric(float64(spawn)/float64(bare/time.Duration(b.N)), "spawn-ratio")
}

// BenchmarkThroughput times 256 MiB of stdout from a box through the driver
// (host-connected output, see agentproto.Request.HostOut) against a bare
// `runsc exec` of the same command read from a pipe, and against the same
// exec relayed in frames through the agent (relay-MB/s), interleaved.
func BenchmarkThroughput(b *testing.B) {
	size := benchSize()
	d, _ := newDriver(b)
	img := &sandbox.Image{Ref: "busybox", Rootfs: busyboxRootfs(b)}
	ctx := context.Background()
	h := create(b, d, sandbox.Spec{BoxID: "bench", Image: img, CPU: 2, MemoryMB: 512})
	runsc, global := d.BareRunsc()
	// dd with 64 KiB writes, a typical buffered writer. (busybox head writes
	// 4 KiB at a time: every write is a host syscall of the sentry, and both
	// sides drop to about 60 MB/s.)
	cmdline := []string{"dd", "if=/dev/zero", "bs=65536", fmt.Sprint("count=", size/65536)}
	run := func(relay bool) time.Duration {
		d.SetRelayOutput(relay)
		defer d.SetRelayOutput(false)
		var n countWriter
		start := time.Now()
		p, err := d.Exec(ctx, h, sandbox.ProcessSpec{Cmd: cmdline, Stdout: &n})
		if err != nil {
			b.Fatal(err)
		}
		if ho, ok := p.(interface{ HostOut() bool }); !ok || ho.HostOut() == relay {
			b.Fatalf("exec with relay=%v: host-connected output %v", relay, ok && ho.HostOut())
		}
		if code, err := p.Wait(); code != 0 || err != nil || int64(n) != size {
			b.Fatal(code, err, n)
		}
		return time.Since(start)
	}
	var box, relay, bare time.Duration
	b.SetBytes(size)
	b.ResetTimer()
	for range b.N {
		box += run(false)
		bare += bareExec(b, d.BareAttr(), runsc, global, h, cmdline, size)
		relay += run(true)
	}
	mbps := func(d time.Duration) float64 { return float64(size) * float64(b.N) / d.Seconds() / (1 << 20) }
	b.ReportMetric(mbps(box), "box-MB/s")
	b.ReportMetric(mbps(relay), "relay-MB/s")
	b.ReportMetric(mbps(bare), "bare-MB/s")
	b.ReportMetric(mbps(box)/mbps(bare), "ratio")
	b.ReportMetric(mbps(relay)/mbps(bare), "relay-ratio")
}

// benchSize is the output size of the throughput benchmarks: 256 MiB, or
// BOXRUN_BENCH_MIB MiB for a quick look.
func benchSize() int64 {
	if n, err := strconv.Atoi(os.Getenv("BOXRUN_BENCH_MIB")); err == nil && n > 0 {
		return int64(n) << 20
	}
	return 256 << 20
}

func report(b *testing.B, box, bare time.Duration) {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(b.N) }
	b.ReportMetric(ms(box), "box-ms/op")
	b.ReportMetric(ms(bare), "bare-ms/op")
	b.ReportMetric(float64(box)/float64(bare), "ratio")
}

// bareRunFirstOutput writes a bundle for `echo hi` on rootfs and times a
// bare `runsc run` of it up to its first line of output.
func bareRunFirstOutput(b *testing.B, d *gvisor.Driver, runsc string, global []string, bundles, id, rootfs string) time.Duration {
	b.Helper()
	bundle := filepath.Join(bundles, id)
	if err := d.WriteBareBundle(bundle, rootfs, id, []string{"echo", "hi"}); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	cmd := exec.Command(runsc, append(global, "run", "--bundle="+bundle, id)...)
	cmd.SysProcAttr = d.BareAttr()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	if _, err := bufio.NewReader(out).ReadString('\n'); err != nil {
		b.Fatal(err)
	}
	took := time.Since(start)
	io.Copy(io.Discard, out)
	if err := cmd.Wait(); err != nil {
		b.Fatal(err)
	}
	return took
}

// bareExec times a bare `runsc exec` of cmdline in sandbox h, reading its
// stdout from a pipe; it must produce exactly want bytes. attr is
// Driver.BareAttr (the user namespace of a rootless driver).
func bareExec(b *testing.B, attr *syscall.SysProcAttr, runsc string, global []string, h string, cmdline []string, want int64) time.Duration {
	b.Helper()
	start := time.Now()
	cmd := exec.Command(runsc, append(append(global, "exec", "--cwd=/", h), cmdline...)...)
	cmd.SysProcAttr = attr
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	if got, _ := io.Copy(io.Discard, out); got != want {
		b.Fatalf("bare exec wrote %d bytes, want %d", got, want)
	}
	if err := cmd.Wait(); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}
