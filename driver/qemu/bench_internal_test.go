package qemu

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/boxrun/boxrun/agentproto"
	"github.com/boxrun/boxrun/boxruntest"
	"github.com/boxrun/boxrun/internal/testenv"
	"github.com/boxrun/boxrun/sandbox"
)

// The benchmarks compare the driver with bare QEMU booting the same kernel,
// initramfs and agent on a prepared disk, driven over the agent protocol
// without the driver (no state files, no per-box disk, no daemonizing),
// measured in the same run. Each reports both sides and their ratio
// (driver/bare, so 1.0 means no overhead). Boots are slow under TCG: run
// with -benchtime=3x or so.

// benchEnv is a Driver plus a bare VM set up once per benchmark.
type benchEnv struct {
	d     *Driver // default: snapshot boots
	cold  *Driver // ColdBoot
	image *sandbox.Image
	bare  string // directory of the bare VM (disk.img, sockets)
}

func newBenchEnv(b *testing.B) *benchEnv {
	b.Helper()
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		testenv.Skip(b, "qemu-system-x86_64 not installed")
	}
	if _, err := FindKernel(); err != nil {
		testenv.Skip(b, "no guest kernel")
	}
	tmp := b.TempDir()
	agent := filepath.Join(tmp, AgentName)
	if err := BuildAgent(b.Context(), agent); err != nil {
		b.Fatal(err)
	}
	d, err := New(Config{Dir: filepath.Join(tmp, "driver"), Agent: agent})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.Prune(context.Background(), nil); d.Close() })
	cold, err := New(Config{Dir: filepath.Join(tmp, "cold"), Agent: agent, ColdBoot: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cold.Prune(context.Background(), nil); cold.Close() })
	e := &benchEnv{d: d, cold: cold, image: boxruntest.BusyboxImage(b), bare: filepath.Join(tmp, "bare")}
	os.MkdirAll(e.bare, 0o700)
	disk := filepath.Join(e.bare, diskFile)
	if err := os.WriteFile(disk, nil, 0o600); err != nil {
		b.Fatal(err)
	}
	os.Truncate(disk, 1<<30)
	if out, err := exec.Command(d.mkfs, "-q", "-F", "-d", e.image.Rootfs, disk).CombinedOutput(); err != nil {
		b.Fatalf("mkfs: %v: %s", err, out)
	}
	return e
}

// bareBoot starts QEMU directly (as a child, not daemonized) and waits for
// the agent to be set up.
func (e *benchEnv) bareBoot(b *testing.B) (*exec.Cmd, *agentproto.Conn) {
	b.Helper()
	d := e.d
	args := []string{"-M", "microvm", "-accel", d.accel, "-m", "256", "-smp", "1",
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-serial", "file:" + consoleFile, "-kernel", d.kernel, "-initrd", d.initrd,
		"-append", fmt.Sprintf("console=ttyS0 panic=-1 reboot=t quiet rdinit=/init tsc_early_khz=%d", d.tscKHz),
		"-global", "virtio-mmio.force-legacy=false",
		"-device", "virtio-serial-device",
		"-chardev", "socket,id=agent,path=" + agentSock + ",server=on,wait=off",
		"-device", "virtserialport,chardev=agent,name=boxrun.agent",
		"-drive", "id=root,file=" + diskFile + ",format=raw,if=none,cache=unsafe",
		"-device", "virtio-blk-device,drive=root"}
	os.Remove(filepath.Join(e.bare, agentSock))
	cmd := exec.Command(d.qemu, args...)
	cmd.Dir = e.bare
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	var conn *agentproto.Conn
	for {
		var err error
		if conn, err = dialAgent(ctx, e.bare); err == nil {
			break
		}
		if ctx.Err() != nil {
			b.Fatalf("bare boot: %v", err)
		}
		time.Sleep(5 * time.Millisecond) // QEMU has not made the socket yet
	}
	_, err := call(ctx, conn, &agentproto.Request{Op: agentproto.OpSetup, Setup: &agentproto.Setup{
		TimeUnixNano: time.Now().UnixNano(), RootDevice: "/dev/vda", Workdir: "/root"}})
	if err != nil {
		b.Fatalf("bare setup: %v", err)
	}
	return cmd, conn
}

func (e *benchEnv) bareStop(cmd *exec.Cmd, conn *agentproto.Conn) {
	conn.Close()
	cmd.Process.Kill()
	cmd.Wait()
}

func (e *benchEnv) create(b *testing.B) string {
	return e.createWith(b, e.d)
}

func (e *benchEnv) createWith(b *testing.B, d *Driver) string {
	b.Helper()
	h, err := d.Create(b.Context(), sandbox.Spec{BoxID: "bench", Image: e.image, CPU: 1, MemoryMB: 256,
		DiskSizeGB: 1, Workdir: "/root", Env: e.image.Config.Env})
	if err != nil {
		b.Fatal(err)
	}
	return h
}

// rawExec runs cmd over conn with the bare protocol and returns the stdout
// byte count.
func rawExec(b *testing.B, conn *agentproto.Conn, cmd ...string) int64 {
	b.Helper()
	st, release, err := conn.Open(b.Context(), &agentproto.Request{Op: agentproto.OpExec, ID: fmt.Sprint(time.Now().UnixNano()),
		Cmd: cmd, Env: []string{"PATH=/bin"}, Dir: "/root"})
	if err != nil {
		b.Fatal(err)
	}
	defer release()
	defer st.Close()
	var res agentproto.Result
	if err := agentproto.ReadJSON(st, agentproto.FrameResult, &res); err != nil || res.Error != "" {
		b.Fatalf("raw exec: %v %s", err, res.Error)
	}
	agentproto.WriteFrame(st, agentproto.FrameEOF, nil)
	var n int64
	for {
		typ, payload, err := agentproto.ReadFrame(st)
		if err != nil {
			b.Fatal(err)
		}
		switch typ {
		case agentproto.FrameStdout:
			n += int64(len(payload))
		case agentproto.FrameExit:
			var ex agentproto.Exit
			json.Unmarshal(payload, &ex)
			if ex.Code != 0 {
				b.Fatalf("raw exec %v: exit %d", cmd, ex.Code)
			}
			return n
		}
	}
}

func (e *benchEnv) driverExec(b *testing.B, h string, cmd ...string) int64 {
	b.Helper()
	var w countWriter
	p, err := e.d.Exec(b.Context(), h, sandbox.ProcessSpec{Cmd: cmd, Stdout: &w})
	if err != nil {
		b.Fatal(err)
	}
	if code, err := p.Wait(); err != nil || code != 0 {
		b.Fatalf("exec %v: %d %v", cmd, code, err)
	}
	return int64(w)
}

type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }

func report(b *testing.B, unit string, bare, drv time.Duration) {
	n := float64(b.N)
	b.ReportMetric(float64(bare.Microseconds())/1000/n, "bare-"+unit)
	b.ReportMetric(float64(drv.Microseconds())/1000/n, "driver-"+unit)
	b.ReportMetric(float64(drv)/float64(bare), "ratio")
}

// BenchmarkBoot: launch to a set-up agent. The driver's side is Create
// (disk from the image, launch, handshake, setup), cold and from the
// template snapshot (made before the timer starts); Remove is not timed.
// Ratios are against bare QEMU's cold boot; restore-vs-cold compares the
// driver's two paths.
func BenchmarkBoot(b *testing.B) {
	e := newBenchEnv(b)
	e.d.Remove(b.Context(), e.create(b)) // makes the template
	var bare, cold, snap time.Duration
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		cmd, conn := e.bareBoot(b)
		bare += time.Since(t0)
		e.bareStop(cmd, conn)

		t0 = time.Now()
		h := e.createWith(b, e.cold)
		cold += time.Since(t0)
		b.StopTimer()
		e.cold.Remove(b.Context(), h)
		b.StartTimer()

		t0 = time.Now()
		h = e.create(b)
		snap += time.Since(t0)
		b.StopTimer()
		e.d.Remove(b.Context(), h)
		b.StartTimer()
	}
	b.StopTimer()
	n := float64(b.N)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / n }
	b.ReportMetric(ms(bare), "bare-ms/boot")
	b.ReportMetric(ms(cold), "cold-ms/boot")
	b.ReportMetric(ms(snap), "snapshot-ms/boot")
	b.ReportMetric(float64(cold)/float64(bare), "cold/bare")
	b.ReportMetric(float64(snap)/float64(bare), "snapshot/bare")
	b.ReportMetric(float64(snap)/float64(cold), "snapshot/cold")
}

// BenchmarkExec: round trip of `true` (start, exit, output closed).
func BenchmarkExec(b *testing.B) {
	e := newBenchEnv(b)
	cmd, conn := e.bareBoot(b)
	defer e.bareStop(cmd, conn)
	h := e.create(b)
	rawExec(b, conn, "true")
	e.driverExec(b, h, "true")
	var bare, drv time.Duration
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		rawExec(b, conn, "true")
		bare += time.Since(t0)
		t0 = time.Now()
		e.driverExec(b, h, "true")
		drv += time.Since(t0)
	}
	b.StopTimer()
	report(b, "ms/exec", bare, drv)
}

// BenchmarkStdout: 16 MiB of stdout streamed to the host.
func BenchmarkStdout(b *testing.B) {
	const size = 16 << 20
	e := newBenchEnv(b)
	cmd, conn := e.bareBoot(b)
	defer e.bareStop(cmd, conn)
	h := e.create(b)
	shell := []string{"head", "-c", fmt.Sprint(size), "/dev/zero"}
	var bare, drv time.Duration
	b.SetBytes(size)
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		if n := rawExec(b, conn, shell...); n != size {
			b.Fatalf("bare: %d bytes", n)
		}
		bare += time.Since(t0)
		t0 = time.Now()
		if n := e.driverExec(b, h, shell...); n != size {
			b.Fatalf("driver: %d bytes", n)
		}
		drv += time.Since(t0)
	}
	b.StopTimer()
	mb := float64(size) / (1 << 20) * float64(b.N)
	b.ReportMetric(mb/bare.Seconds(), "bare-MB/s")
	b.ReportMetric(mb/drv.Seconds(), "driver-MB/s")
	b.ReportMetric(float64(drv)/float64(bare), "ratio")
}
