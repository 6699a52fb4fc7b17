package boxinit

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
)

// install copies the running binary to dir/init (mode 0755) and creates
// dir/agent (mode 0700): the layout of /.boxrun the driver/kubernetes pods
// get from an init container, since a pod cannot bind-mount a host file.
func install(dir string) int {
	self, err := os.Open("/proc/self/exe")
	if err != nil {
		return report(err)
	}
	defer self.Close()
	if err := os.MkdirAll(filepath.Join(dir, "agent"), 0o700); err != nil {
		return report(err)
	}
	if err := os.Chmod(filepath.Join(dir, "agent"), 0o700); err != nil {
		return report(err)
	}
	tmp := filepath.Join(dir, ".init.tmp")
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		return report(err)
	}
	if _, err := io.Copy(out, self); err != nil {
		out.Close()
		return report(err)
	}
	if err := out.Close(); err != nil {
		return report(err)
	}
	return report(os.Rename(tmp, filepath.Join(dir, "init")))
}

// relay connects its standard input and output to the agent's socket: the
// channel of driver/kubernetes, which reaches a box's agent through the
// pods/exec subresource. It returns when either side ends.
func relay() int {
	c, err := net.Dial("unix", AgentSocket)
	if err != nil {
		fmt.Fprintln(os.Stderr, "boxrun-init: relay:", err)
		return exitFailure
	}
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(c, os.Stdin); done <- struct{}{} }()
	go func() { _, _ = io.Copy(os.Stdout, c); done <- struct{}{} }()
	<-done
	c.Close()
	return exitOK
}
