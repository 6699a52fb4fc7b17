package gvisor_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/boxrun/boxrun/driver/gvisor"
)

// BenchmarkCLIRun (issue 13 item 9): the built `boxrun run --cpus 1 IMG sh
// -c 'echo hi'` CLI process against a running server (the HTTP API on
// loopback, a Manager over this driver) from its start to its exit, vs a
// bare `runsc run` of the same command on the same rootfs to its exit,
// interleaved. The box's teardown happens after the reply (not timed: it
// overlaps the next bare run, as it would the caller's next work).
func BenchmarkCLIRun(b *testing.B) {
	bin := os.Getenv(gvisor.InitEnv) // the boxrun binary (main_test builds it)
	if bin == "" {
		b.Skip("no boxrun binary: $" + gvisor.InitEnv + " unset")
	}
	_, c, d := newHTTPManager(b)
	rootfs := busyboxRootfs(b)
	runsc, global := d.BareRunsc()
	bundles := b.TempDir()
	cmdline := []string{"sh", "-c", "echo hi"}
	cliArgs := append([]string{"--url", c.URL(), "--autostart=false", "run", "--cpus", "1", "dir:" + rootfs}, cmdline...)
	env := append(os.Environ(), "BOXRUN_STATE_DIR="+b.TempDir())
	runCLI := func() time.Duration {
		var out, errb bytes.Buffer
		cmd := exec.Command(bin, cliArgs...)
		cmd.Env, cmd.Stdout, cmd.Stderr = env, &out, &errb
		start := time.Now()
		err := cmd.Run()
		took := time.Since(start)
		if err != nil || out.String() != "hi\n" {
			b.Fatalf("boxrun run: %v: %q %q", err, out.String(), errb.String())
		}
		return took
	}
	runBare := func(i int) time.Duration {
		id := fmt.Sprintf("clibare%09d", i)
		bundle := filepath.Join(bundles, id)
		if err := d.WriteBareBundle(bundle, rootfs, id, cmdline); err != nil {
			b.Fatal(err)
		}
		var out bytes.Buffer
		cmd := exec.Command(runsc, append(global, "run", "--bundle="+bundle, id)...)
		cmd.SysProcAttr = d.BareAttr()
		cmd.Stdout = &out
		start := time.Now()
		err := cmd.Run()
		took := time.Since(start)
		if err != nil || out.String() != "hi\n" {
			b.Fatalf("bare runsc run: %v: %q", err, out.String())
		}
		return took
	}
	runCLI() // the image is resolved once, as on a server that ran it before
	var cli, bare time.Duration
	b.ResetTimer()
	for i := range b.N {
		cli += runCLI()
		bare += runBare(i)
	}
	report(b, cli, bare)
}
