// Package qemu is a sandbox.Driver that runs each box in its own QEMU
// micro-VM: a real Linux kernel per box, with a small Go agent as PID 1.
//
// # Overview
//
// One box is one qemu-system-x86_64 -M microvm process (daemonized, so it
// outlives the host process; QMP socket for control). QEMU boots the guest
// kernel (Debian's linux-image-cloud-amd64 by default) with an initramfs
// the driver assembles in New: the static guest agent (package agent) as
// /init and the virtio modules it needs, resolved from the kernel's
// modules.dep. The box's root filesystem is an ext4 disk on virtio-blk,
// made at Create with `mkfs.ext4 -d` from the image's rootfs: a sparse file
// of DiskSizeGB GiB (1 GiB when 0), so Stop keeps the box's files and
// Start boots the same disk. CPU and MemoryMB become -smp and -m (at least
// 128 MiB). A box without SandboxSpec.Network has no network device, only
// the guest's loopback (see Network).
//
// The agent loads the modules, mounts the disk, moves it over / and serves
// the host over a virtio-serial port ("boxrun.agent") with the protocol of
// package proto: yamux streams, one per operation, so execs run
// concurrently, each with streamed stdout and stderr, stdin with EOF, exit
// code, environment, working directory, user (SandboxSpec.User resolved
// on the host in the image's /etc/passwd and /etc/group by
// internal/userdb, applied with setuid/setgid/setgroups, plus HOME),
// signals to its process group, and a pty with resize (stdin EOF is the
// terminal's EOF character there). Copy in and out are tar streams handled in the guest by
// internal/tarutil. As PID 1 the agent reaps every orphan; output that a
// background child keeps open does not hold an exec open (the pipes are
// drained for a moment after the process exits, then closed).
//
// # Snapshot boot
//
// A cold boot under TCG takes seconds, mostly kernel initialization. So,
// unless Config.ColdBoot is set, the first boot of each shape (CPUs,
// memory, disk size, kernel, initramfs, accelerator) boots a template VM
// with an empty disk of that size, migrates it to
// <Dir>/templates/<key>.snap once its agent answers, and quits it. Boxes of
// that shape then start (Create and Start alike) with -incoming from the
// snapshot and their own disk behind the same device, in well under a
// second. The agent drops the block cache of the template's empty disk
// before mounting the box's, and the setup sets the clock and reseeds the
// guest RNG with host entropy, so clones share no random state. Boxes with
// volumes always boot cold (vhost-user-fs cannot migrate). Any failure of a
// snapshot boot falls back to a cold boot. Snapshots are a cache: each is
// about the size of the guest memory the kernel touched (~70 MB at
// 256 MiB) and can be deleted at any time while no template is being made.
//
// # Checkpoints
//
// Driver implements sandbox.Checkpointer, so the Manager's Checkpoint,
// Restore, Fork and Hibernate work on QEMU boxes. Checkpoint closes the
// driver's agent connection, pauses the VM (QMP stop, which drains its
// disk I/O), copies its disk (cp --sparse=always --reflink=auto: a few MB
// for a fresh 1 GiB disk), and migrates RAM and device state to a file
// (QMP migrate to exec:zstd -1, without the 32 MiB/s default bandwidth
// cap; plain when zstd is not installed), the same mechanism as template
// snapshots but from the running, daemonized box VM. Then cont resumes it;
// without LeaveRunning the box is then stopped as by Stop, so the guest
// writes its cached files back (the checkpoint has them in its memory
// image). The checkpoint directory holds state, disk.img and box.json
// (written last: the box's shape, env, user, workdir and egress policy,
// and the QEMU binary, guest kernel, initramfs and accelerator it needs).
//
// Restore makes a new box directory with its own copy of the disk,
// launches QEMU daemonized with -incoming from the state file and the
// checkpoint's shape, resumes it and runs the agent's setup again: it sets
// the clock, reseeds the RNG, sets the new hostname (the box ID) and, for a
// networked box, moves the NIC to the address of the network the restore
// got (its own tap, address, policy, resolver and ports: host ports are
// new unless the box ID is the source's, as when a hibernated box
// resumes). Processes continue where they were; the driver's next
// connection resynchronizes the agent, which drops the saved session.
// Refusals: a box that is not running (ErrConflict); a box with volumes
// (ErrInvalid: vhost-user-fs devices cannot migrate); a checkpoint made
// with another QEMU binary, guest kernel, initramfs (agent and modules) or
// accelerator (ErrInvalid, naming what changed: the migration stream only
// loads into the same machine, and the guest memory holds the kernel and
// agent it booted); a directory without box.json (ErrNotFound).
//
// Volumes are served by one virtiofsd per volume (the C virtiofsd of
// qemu-system-common) and mounted by the agent; read-only volumes are also
// bind-mounted read-only on the host, which needs root.
//
// # Network
//
// A networked box gets the same network as a gVisor box, from the same
// code (package driver/internal/boxnet, Host.UpTap): the same /30 of the
// shared pool, the same nftables table (default policy: the internet is
// reachable; every host address, the gateway except its DNS resolver,
// loopback, 169.254/16 and other boxes are not), the same resolver that
// enforces domain rules and pins the addresses it returned, the same
// net.denied reports (OnNetDenied), SetEgress at once on a running box,
// and the same published-port proxies on host loopback. Only the host link
// differs. A VM has its own kernel, hence its own network stack: a network
// namespace would add nothing, so the host end of the link is a persistent
// tap device bx<handle[:13]> carrying the gateway address, and QEMU
// attaches a virtio-net device to it (-netdev tap,script=no). The guest
// agent configures the address, the default route and /etc/resolv.conf
// at setup (agentproto.Setup.Net). QEMU's user-mode network (slirp) was
// the alternative: it would need no root, but it forwards from inside the
// QEMU process with the host's own sockets, so host loopback and every
// host address are reachable unless each is filtered inside QEMU, and the
// nftables policy, NFLOG denials and the resolver could not be shared
// with the gVisor driver. One policy implementation for both drivers is
// worth the root it needs; without root (or without ip and nft),
// networked boxes are refused with VALIDATION_ERROR and the reason.
//
// The table is installed before the tap exists, so Prune finds a tap that
// a crash left by its table; Stop, Remove and Prune remove tap and table.
// A new Driver on the same Dir restores the resolver, policy and ports of
// running networked boxes (their VMs and taps outlive the host process).
// A template VM of a networked shape has the same NIC on a QEMU hub port
// that leads nowhere, so networked boxes boot from snapshots as well.
//
// # Stats
//
// Driver.Stats (sandbox.Statser) measures on the host what the host can
// see: CPU time of the QEMU process, the blocks of the disk image, the
// byte counters of the box's tap. Memory in use and the process count come
// from the guest agent (agentproto.OpStats), bounded by the VM's memory:
// they are the box's own report, for display, never for enforcement.
//
// # Host layout
//
// Everything lives under Config.Dir:
//
//	<Dir>/initramfs-<hash>.cpio   agent + modules, rebuilt when they change
//	<Dir>/templates/<key>.snap    template snapshots (see Snapshot boot)
//	<checkpoint dir>/             state (zstd), disk.img, box.json
//	<Dir>/boxes/<handle>/         one box: box.json (spec and QEMU's PID),
//	                              disk.img, console.log (guest console),
//	                              qemu.log, qemu.pid, agent.sock, qmp.sock,
//	                              vfs<N>.sock and vol<N>/ (volumes)
//
// Handles are 16 hex digits. Every QEMU and virtiofsd process of a box
// carries "boxrun-<handle>" in its command line; the driver checks
// /proc/<pid>/cmdline for it before it signals a PID, and finds processes a
// crash left unrecorded by scanning /proc for it. Remove and Prune kill
// them, unmount the volumes and delete the directory, so nothing is left.
// After a crash of the host process a new Driver on the same Dir reconnects
// to running boxes on first use: every connection starts with a handshake
// (proto.Hello) that resynchronizes the agent, which kills the execs of
// the previous connection.
//
// # The agent binary
//
// The driver never builds anything. Config.Agent names the static agent;
// when empty it is looked up as $BOXRUN_QEMU_AGENT, then
// <Dir>/../bin/boxrun-qemu-agent, then boxrun-qemu-agent next to
// os.Executable(), then in PATH. Ship it next to the boxrun binary:
//
//	CGO_ENABLED=0 go build -trimpath -ldflags=-s -o bin/boxrun-qemu-agent ./driver/qemu/agent
//
// Tests and CI call BuildAgent, which does the same.
//
// The guest agent is deliberately not a role of the boxrun binary (as the
// gVisor init is): it is copied into every VM's initramfs, which the kernel
// unpacks into guest RAM at each boot, and it runs as PID 1 of a kernel that
// has nothing else. The agent alone is about 3 MB stripped; the boxrun
// binary, with the CLI, the HTTP server, SQLite and both drivers, is about
// 18 MB — six times the boot-time copy and memory per VM for code the guest
// never runs. Both speak the same protocol (package agentproto) through the
// same server code (internal/boxagent), so the two binaries cannot drift.
//
// # Accelerator
//
// Config.Accel "auto" uses KVM only when /dev/kvm is hardware
// virtualization (vmx or svm CPU flag and a kvm_intel or kvm_amd module;
// software KVM such as kvm_pvm hangs stock kernels) and a test boot with
// KVM reaches the agent within 15 s. Otherwise it uses TCG
// emulation, which works everywhere but boots in about 3–5 s and runs
// guest code many times slower. Driver.Accel reports the choice, which New
// also logs. The guest's early TSC frequency is passed on the kernel
// command line from the host's /proc/cpuinfo, without which an emulated
// microvm can hang calibrating it.
//
// # Requirements
//
// Debian packages: qemu-system-x86 (QEMU and virtiofsd), linux-image-cloud-amd64
// (or any kernel with virtio-mmio, virtio_console, virtio_blk, ext4 and,
// for volumes, virtiofs as modules or built in) and e2fsprogs (mkfs.ext4
// with -d). New wraps ErrUnsupported when one is missing. Root is needed
// only for read-only volumes.
package qemu
