package testinet

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// ProbeName is the file name of the static netprobe binary BuildProbe
// makes.
const ProbeName = "netprobe"

// BuildProbe builds the static netprobe command (package
// internal/testinet/netprobe) into a new directory (mode 0755) and returns
// that directory: mount it into a box, or run the binary on the host, so
// both sides of a benchmark run the same code.
func BuildProbe(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "boxrun-netprobe-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(dir, ProbeName), "github.com/boxrun/boxrun/internal/testinet/netprobe")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build netprobe: %v: %s", err, out)
	}
	return dir
}

// ProbeResult is one line of netprobe output.
type ProbeResult struct {
	Bytes   int64   `json:"bytes"`
	Seconds float64 `json:"seconds"`
}

// ParseProbe decodes netprobe's output.
func ParseProbe(out []byte) (ProbeResult, error) {
	var r ProbeResult
	if err := json.Unmarshal(out, &r); err != nil {
		return r, fmt.Errorf("netprobe output %q: %w", out, err)
	}
	return r, nil
}

// Benchmark servers of an Internet, on its main address.
const (
	SinkPort    = 7  // accepts and closes at once (connect latency)
	ChargenPort = 19 // writes ChargenBytes, then closes (throughput)
)

// ChargenBytes is what the ChargenPort server sends per connection.
const ChargenBytes = 64 << 20

// ServeBench starts the benchmark servers (SinkPort, ChargenPort) on the
// internet's main address until t ends.
func (in *Internet) ServeBench(t testing.TB) {
	t.Helper()
	var sink, gen net.Listener
	InNS(t, in.NS, func() error {
		var err error
		if sink, err = net.Listen("tcp4", net.JoinHostPort(in.Addr.String(), strconv.Itoa(SinkPort))); err != nil {
			return err
		}
		gen, err = net.Listen("tcp4", net.JoinHostPort(in.Addr.String(), strconv.Itoa(ChargenPort)))
		return err
	})
	t.Cleanup(func() { sink.Close(); gen.Close() })
	go func() {
		for {
			c, err := sink.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	chunk := make([]byte, 256<<10)
	go func() {
		for {
			c, err := gen.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.CopyN(c, zeros{chunk}, ChargenBytes)
			}()
		}
	}()
}

// zeros reads as an endless run of zero bytes.
type zeros struct{ buf []byte }

func (z zeros) Read(p []byte) (int, error) {
	n := copy(p, z.buf)
	return n, nil
}
