// Package gvisor is a boxrun.Driver that runs each box in its own long-lived
// gVisor sandbox, driven through runsc's OCI command line.
//
// # Overview
//
// One box is one sandbox. Its root filesystem is a host overlayfs: the
// image's unpacked rootfs is the shared read-only lower layer, and each box
// has its own upper and work directories, so a stopped box keeps its files
// and the image stays pristine. runsc runs with --overlay2=none so that the
// sandbox writes go straight into that overlay.
//
// PID 1 of every box is a small static helper (package boxinit, installed on
// the host as "boxrun-init") bind-mounted read-only at /.boxrun/init. It
// reaps orphans, stops the box on SIGTERM, and implements copy in and out as
// tar streams, so boxes work with any image, including one with no shell
// and no tar.
//
// # Host layout
//
// Everything lives under Config.Dir:
//
//	<Dir>/run/                runsc --root (state, locks, control sockets, null-netns)
//	<Dir>/boxes/<handle>/     one box: box.json, config.json, create.log,
//	                          rootfs/ (overlay mount point), upper/, work/
//	<Dir>/empty/              lower layer of boxes created without an image
//
// Handles are 16 lowercase hex characters: runsc matches container IDs by
// prefix, so every ID has the same length.
//
// # Requirements and limits
//
// The driver needs root on the host (overlayfs mounts, cgroups); New fails
// with ErrUnsupported otherwise. runsc's OCI commands cannot run rootless
// with a persistent host overlay (see the spike notes in the repository).
//
// CPU and MemoryMB become cgroup limits when the host has cgroup controllers
// for them (v1 or v2, feature-detected in New; see Driver.Limits): CPU is a
// CFS quota of CPU×100ms per 100ms, memory a hard limit on the whole sandbox
// (the sentry and the gofer included). A box that goes over its memory limit
// is killed as a whole by the host OOM killer. DiskSizeGB is not enforced.
//
// Network false gives the box only a loopback interface (--network=none).
// Network true uses runsc's --network=host: the box shares the host's
// network stack through the sentry, sees the host's interfaces and
// addresses, can reach anything the host can, and its listeners bind host
// ports. The host's /etc/resolv.conf is bind-mounted read-only. There is no
// per-box network namespace, veth or NAT.
//
// # Processes
//
// Exec runs `runsc exec` with pipes for stdio (or a driver-made pty for a
// TTY, whose stdin EOF is the EOF character). The process spec (command,
// env, cwd, user) goes to runsc as a --process file through a pipe: the
// user is SandboxSpec.User resolved in the image's /etc/passwd and
// /etc/group at Create (internal/userdb), with its supplementary groups and
// HOME; a non-root user gets no effective capabilities. runsc writes the in-box PID into a pipe the moment the process
// runs, so a command that cannot start (runsc's own exit 128) is told apart
// from one that exits with 128. Signal is `runsc kill --pgid`, so it reaches
// the whole process group. Wait returns when `runsc exec` exits and the
// output the process wrote has been delivered, even if a background child
// still holds the pipes or terminal.
package gvisor
