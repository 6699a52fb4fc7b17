package gvisor

import (
	"encoding/json"
	"os"
	"path/filepath"
	"syscall"

	"github.com/boxrun/boxrun/driver/gvisor/boxinit"
	"github.com/boxrun/boxrun/driver/internal/unixsock"
)

// BareRunsc returns the runsc binary and the global flags the driver uses
// for a box without network, so benchmarks can call runsc directly as a
// baseline.
func (d *Driver) BareRunsc() (string, []string) {
	return d.runscPath, d.globalArgs(nil)
}

// BareAttr returns the process attributes of a bare runsc call that runs
// like the driver's: nil as root, the user namespace when rootless.
func (d *Driver) BareAttr() *syscall.SysProcAttr { return d.userns.attr() }

// WriteBareBundle writes bundle/config.json for a plain `runsc run` of args
// on the read-only rootfs, with the same mounts, limits and namespaces as a
// box but no helper and no overlay.
func (d *Driver) WriteBareBundle(bundle, rootfs, id string, args []string) error {
	m := &boxMeta{BoxID: "bare", Lower: rootfs, CPU: 1, MemoryMB: 256, Env: mergeEnv(nil), Workdir: "/"}
	s := d.bundleConfig(id, m)
	s.Root = ociRoot{Path: rootfs, Readonly: true}
	s.Process.Args = args
	var mounts []ociMount
	for _, mt := range s.Mounts {
		if mt.Destination != initMount && mt.Destination != boxinit.AgentDir {
			mounts = append(mounts, mt)
		}
	}
	s.Mounts = mounts // without the helper and the agent directory
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(bundle, 0o700); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o600)
}

// BoxDir returns the host directory of box h.
func (d *Driver) BoxDir(h string) string { return d.boxDir(h) }

// ELFInterp is elfInterp.
var ELFInterp = elfInterp

// RoleMarker is roleMarker.
var RoleMarker = roleMarker

// SetRelayOutput makes agent execs relay their output through the agent in
// frames (true) or use host-connected sockets (false, the default).
func (d *Driver) SetRelayOutput(relay bool) { d.relayOutput.Store(relay) }

// DialSocketNoFollow is unixsock.DialNoFollow, which the driver dials exec output sockets with.
var DialSocketNoFollow = unixsock.DialNoFollow

// ValidHandle reports whether h has the form of a handle the driver makes.
func ValidHandle(h string) bool { return validHandle(h) }
