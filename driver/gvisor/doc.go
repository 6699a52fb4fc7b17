// Package gvisor is a sandbox.Driver that runs each box in its own long-lived
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
// PID 1 of every box is the boxrun binary itself in its init role (package
// boxinit; Config.InitPath says how it is found), bind-mounted read-only
// at /.boxrun/init. It reaps orphans, stops the box on SIGTERM, and is the
// box's agent: it serves package agentproto (the protocol of the QEMU guest
// agent too) on a per-box Unix socket, through which execs, signals,
// terminal resizes and tar copies run without starting a `runsc exec`
// each time, so boxes work with any image, including one with no shell
// and no tar. Why a Unix socket and how only that box's host side can reach
// it: see package boxinit.
//
// # Host layout
//
// Everything lives under Config.Dir:
//
//	<Dir>/run/                runsc --root (state, locks, control sockets, null-netns)
//	<Dir>/boxes/<handle>/     one box: box.json, config.json, create.log,
//	                          rootfs/ (overlay mount point), and its
//	                          writable layer: disk.img, disk/, layer/,
//	                          vols/ (see Host files), or upper/ and work/
//	                          in boxes with unshifted IDs
//	<Dir>/empty/              lower layer of boxes created without an image
//
// Handles are 16 lowercase hex characters: runsc matches container IDs by
// prefix, so every ID has the same length.
//
// # Requirements and limits
//
// As root, the driver mounts each box's overlay on the host and puts each
// sandbox in cgroups (below). Without root it runs rootless; see Rootless.
//
// CPU and MemoryMB become cgroup limits when the host has cgroup controllers
// for them (v1 or v2, feature-detected in New; see Driver.Limits): CPU is a
// CFS quota of CPU×100ms per 100ms, memory a hard limit on the whole sandbox
// (the sentry and the gofer included). A box that goes over its memory limit
// is killed as a whole by the host OOM killer: the sentry gets oom_score_adj
// 1000 (the systrap stubs that map the box's memory keep the driver's
// score), so the kernel kills the sandbox rather than one in-box process
// with a bare SIGKILL, and ExitReason says "out of memory" (the Manager
// then stops the box with that reason; Start brings it back). DiskSizeGB is
// enforced as root when the host has mkfs.ext4 and loop devices
// (Limits.Disk): see "Host files".
//
// Network false gives the box only a loopback interface (--network=none).
// Network true gives it its own network namespace with a veth pair to the
// host, NAT egress and gVisor's own network stack (--network=sandbox, the
// OCI spec naming the box's namespace): never the host's network. The
// box's /etc/resolv.conf names its own resolver on the host end of the
// pair. Egress policy (SandboxSpec.Egress, SetEgress), published ports
// (SandboxSpec.Ports) and net.denied reports (OnNetDenied) are done by
// package driver/internal/boxnet; see its doc for the plumbing and the
// rules. Prune removes the namespaces, links and nftables tables of boxes
// that are gone, and a new Driver gives running boxes their policy,
// resolver and published ports back. Rootless, networked boxes are refused
// (creating namespaces, links and tables needs root).
//
// # Host files
//
// As root, a box's user and group IDs are shifted on the host: box ID n is
// stored as host ID Limits().IDBase+n (Config.IDBase, default
// DefaultIDBase; 65536 IDs). runsc itself still runs as root; the shift is
// done by ID-mapped mounts (mount_setattr MOUNT_ATTR_IDMAP, Linux 5.19+
// for overlayfs layers), probed in New. So box root owns nothing of the
// host's: a setuid-root program a box writes is a setuid program of an
// unused host ID, and box root may change host files only where their
// "other" permission bits allow.
//
//   - The box's writable layer (the overlay's upper and work dirs) is seen
//     through an ID-mapped mount, <box>/layer. The image below is not
//     shifted: box root sees the image's files as its own and copies them up
//     as needed.
//   - Every volume is mounted into the box from an ID-mapped mount of its
//     host path, <box>/vols/N (nosuid, nodev; read-only on the host side
//     too for a read-only volume; not recursive: mounts below the host path
//     are not seen; its file system must support ID-mapped mounts, as ext4,
//     xfs, btrfs and tmpfs do, or Create fails). The mapping is the box's,
//     except that box root (user and group separately) is the owner of the
//     volume's host path when that is an ordinary host ID, as for the
//     original clients' `-v $PWD:/work`: box root then writes there as that
//     user (a setuid program it leaves is that user's), other box users as
//     IDBase+n. Host root (ID 0) is never mapped: its files are nobody's to
//     the box, readable only through their "other" bits, and the kernel
//     lets nothing write through an ID-mapped mount to a file whose owner or
//     group is unmapped (so world-writable changes nothing). Hence Create
//     refuses (ErrInvalid) a read-write volume whose host path belongs to
//     host root (user or group 0): give it to a user or to the box range
//     (`chown IDBASE:IDBASE`), or mount it read-only. Files of other host
//     users in a volume are likewise read-only to the box.
//   - DiskSizeGB: the writable layer lives on its own ext4 file system in a
//     sparse image file <box>/disk.img of that size, loop-mounted (nosuid,
//     nodev) at <box>/disk. A box that fills it gets ENOSPC and the host
//     keeps its space; df in the box shows the box's size. The loop device
//     goes with the mount (Stop, Remove, Prune after a crash). Creating the
//     file system adds tens of ms to Create.
//
// Boxes keep what they were created with: boxes made before the shift (or
// with Config.IDBase < 0, or where New's probe failed, which it logs) use
// the unshifted layout, in which box root creates host-root files;
// rootless boxes are the driver user's (see Rootless). The in-box agent's
// directory (<box>/agent, reachable by host root only) is not shifted.
//
// # Rootless
//
// When the process is not root, New probes for unprivileged user namespaces
// (ErrUnsupported without them) and Limits().Rootless is true. runsc's own
// --rootless is refused for its OCI commands, so the driver does what it
// does internally: every runsc invocation starts in a new user namespace,
// where the driver's uid and gid are root (one-entry maps, no setgroups), and
// a new mount namespace, with --ignore-cgroups. Create and Start run the
// in-box helper's host mode (`boxrun-init host-run`, the boxrun binary
// started under that name) there first: it mounts
// the box's overlay (upper and work dirs belong to the driver's user, so the
// mount is writable), creates the workdir and /tmp, and execs
// `runsc run --detach`. The gofer and sandbox processes keep that namespace,
// and with it the mount, alive; Stop deletes the sandbox and the mount goes
// with the namespace, while the files stay in the host-side upper dir, and
// Start mounts again in a new namespace. Exec, kill and delete are later,
// separate invocations in fresh namespaces: they only need the runsc root
// and the sandbox's control socket. Nothing is mounted in the host's
// namespace, so there is nothing to unmount there; Prune and Remove clean up
// processes, runsc files and box dirs as in root mode.
//
// What differs from root mode (TestRootless runs every test of the package
// as uid 65534 to check the rest):
//   - No limits: no cgroups, so CPU and MemoryMB are not enforced
//     (Limits.Cgroups "", CPU and Memory false).
//   - The user namespace maps one uid: uid 0, as the driver's user. Box
//     root can write anywhere its files are the driver's user's, which
//     is the whole rootfs when the image was unpacked by that same user (as
//     a rootless image store does). Image files or volumes owned by other
//     host users appear as uid 65534 ("nobody") in the box and keep only
//     their "other" permission bits, even for box root.
//   - A non-root box user (SandboxSpec.User) runs and reads as usual, but
//     cannot create files or directories on the rootfs or a volume (EINVAL:
//     the new file would be chowned to an unmapped uid), and `chown` to any
//     uid but 0 fails the same way. tmpfs mounts inside the box (/tmp when
//     the image's /tmp is empty, /dev/shm) are not affected. Lifting this
//     needs a subordinate uid range (newuidmap and /etc/subuid) for the
//     sandbox and for the image store (upstream: gVisor issue 9918).
//   - Files the box writes belong to the driver's user on the host.
//   - Network: only none (loopback); networked boxes are refused.
//   - Cost: one more exec (the helper) per Create and Start, but no cgroup
//     setup. Measured on a 2-core dev host (go test -bench, 20 runs each):
//     Create to first exec output 106-118 ms rootless vs 125-139 ms as
//     root, an exec round trip 17.5-19.5 ms vs 18.4-23.9 ms, exec output
//     throughput 666-685 MB/s vs 583-641 MB/s.
//
// # Processes
//
// Exec, Signal, Resize, CopyIn and CopyOut go through the box's agent: one
// connection per box (yamux streams, package agentproto), opened when the
// box starts and again after a restart of the host process, since the
// socket belongs to the sandbox. An exec runs in its own process group (a
// TTY exec in its own session; KILL, TERM and HUP reach the whole
// session); when the connection that started it ends (the server exited
// or crashed) the agent kills it, so no exec outlives the process that can
// collect it. Every frame from the agent is hostile input: a malformed
// stream fails that exec or copy with ErrRuntime and drops the connection.
// DescribeBox reports the agent's state.
//
// A non-TTY exec's stdout and stderr do not go through the agent: the
// agent listens on a per-exec socket in the box's agent directory (a host
// socket, like the agent's own), the driver connects to it twice (opened
// without following links: box root can write that directory), and the
// agent gives the two accepted connections to the process as fd 1 and 2
// and removes the socket (agentproto.Request.HostOut). Output then goes
// from the process to the host as it does for `runsc exec` with donated
// pipes, at more than twice the relayed rate (BENCHMARKS.md). Wait
// returns after the exit and once both sockets reached EOF or stayed idle
// for 50 ms (at most 2 s: a background child may keep them open). No
// other box can reach the socket: the directory is mounted into this box
// only, and --host-uds=create never lets a box connect to a host socket.
// An agent without the capability (a box started by an older driver)
// relays output in frames as before. The connect is done ahead of time:
// on connecting to an agent, and after each exec that used one, the
// driver prepares the next exec's pair in the background
// (agentproto.Conn.PrepareOut), so an exec's process starts without a
// round trip and two connects into the box (3–6 ms of a ~16 ms exec on a
// quiet 2-core host). The agent keeps a prepared pair for the connection
// that made it only, closes it when that connection ends, and drops all
// of them before a checkpoint (they are host sockets too).
//
// When the agent does not answer (box root killed or replaced it, or a box
// made by an older driver) the driver falls back to `runsc exec`, as
// follows. Exec runs `runsc exec` with pipes for stdio (or a driver-made pty for a
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
