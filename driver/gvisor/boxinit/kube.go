package boxinit

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
)

// install copies the running binary to dir/init (mode 0755) and creates
// dir/agent (mode 0700): the layout of /.boxrun the driver/kubernetes pods
// get from an init container, since a pod cannot bind-mount a host file.
// dir itself (an emptyDir, created 0777) becomes 0755: a non-root box user
// must not replace the init binary that the driver's relay execs run as
// root. With workdir (in the box's volume claim, which the init container
// mounts whole), it also creates that directory, 0755 root like a gVisor
// box's workdir, before the kubelet mounts it into the box's container as
// its workdir: made by the kubelet, it would be 0750 and closed to a
// non-root box user. An existing one (a restart) is left as the box left it.
func install(dir, workdir string) int {
	if workdir != "" {
		err := os.Mkdir(workdir, 0o755)
		if err == nil {
			err = os.Chmod(workdir, 0o755) // Mkdir applied the umask
		}
		if err != nil && !errors.Is(err, fs.ErrExist) {
			return report(err)
		}
	}
	self, err := os.Open("/proc/self/exe")
	if err != nil {
		return report(err)
	}
	defer self.Close()
	if err := os.Chmod(dir, 0o755); err != nil {
		return report(err)
	}
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
