package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/boxrun/boxrun/driver/gvisor"
	"github.com/boxrun/boxrun/driver/qemu"
	"github.com/peterbourgon/ff/v3/ffcli"
	"golang.org/x/sys/unix"
)

// Check statuses of boxrun doctor.
const (
	checkOK       = "ok"       // present and usable
	checkWarn     = "warn"     // works, with a limitation worth knowing
	checkMissing  = "missing"  // a required piece is absent: boxes cannot run
	checkOptional = "optional" // an optional piece is absent (QEMU, the demo image)
)

// hostCheck is one line of boxrun doctor: what was checked, what was found
// and, when something is missing, the one command that fixes it.
type hostCheck struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

// errDoctor is returned when a required check fails (exit code 1).
var errDoctorMissing = errors.New("the host lacks what boxes need (see the fixes above)")

func newDoctorCmd(cfg *rootConfig) *ffcli.Command {
	fs := cfg.newFlagSet("doctor")
	asJSON := fs.Bool("json", false, "print the checks as JSON")
	return &ffcli.Command{
		Name:       "doctor",
		ShortUsage: "boxrun doctor [--json]",
		ShortHelp:  "check the host (runsc, init binary, cgroups, namespaces, networking, QEMU, disk) and say how to fix what is missing",
		FlagSet:    fs,
		Options:    ffOptions(),
		Exec: func(ctx context.Context, args []string) error {
			if len(args) > 0 {
				return usagef("doctor takes no arguments")
			}
			checks := runHostChecks(ctx, cfg.stateDir)
			if *asJSON {
				if err := writeJSON(cfg, checks); err != nil {
					return err
				}
			} else {
				printChecks(cfg, checks)
			}
			for _, c := range checks {
				if c.Status == checkMissing {
					return &reportedError{errDoctorMissing}
				}
			}
			return nil
		},
	}
}

func printChecks(cfg *rootConfig, checks []hostCheck) {
	tw := tabwriter.NewWriter(cfg.stdout, 0, 0, 2, ' ', 0)
	for _, c := range checks {
		mark := map[string]string{checkOK: "ok", checkWarn: "WARN", checkMissing: "MISSING", checkOptional: "--"}[c.Status]
		fmt.Fprintf(tw, "%s\t%s\t%s\n", mark, c.Name, c.Detail)
		if c.Fix != "" {
			fmt.Fprintf(tw, "\t\tfix: %s\n", c.Fix)
		}
	}
	tw.Flush()
}

// runHostChecks checks what the drivers need on this host. stateDir is the
// state directory the server would use (its free space is checked).
func runHostChecks(ctx context.Context, stateDir string) []hostCheck {
	gcfg := gvisor.Config{Dir: filepath.Join(stateDir, "gvisor")}
	return []hostCheck{
		checkRunsc(ctx, gcfg),
		checkInit(gcfg),
		checkPrivileges(),
		checkCgroups(),
		checkTool("networking: nft", "nft", "networked boxes (egress policy)", "apt-get install -y nftables", checkMissing),
		checkTool("networking: ip", "ip", "networked boxes (links, namespaces)", "apt-get install -y iproute2", checkMissing),
		checkTool("qemu", "qemu-system-x86_64", "the qemu driver (micro-VMs)", "apt-get install -y qemu-system-x86", checkOptional),
		checkKVM(),
		checkKernel(),
		checkTool("mkfs.ext4", "mkfs.ext4", "the qemu driver's disks", "apt-get install -y e2fsprogs", checkOptional),
		checkFile("busybox-static", "/bin/busybox", "the offline demo image (make demo)", "apt-get install -y busybox-static"),
		checkDisk(stateDir),
	}
}

func checkRunsc(ctx context.Context, cfg gvisor.Config) hostCheck {
	c := hostCheck{Name: "runsc"}
	p, err := gvisor.FindRunsc(cfg)
	if err != nil {
		c.Status, c.Detail = checkMissing, "gVisor's runsc not found ($BOXRUN_RUNSC, <state>/bin, next to boxrun, PATH)"
		c.Fix = "CGO_ENABLED=0 go install gvisor.dev/gvisor/runsc@latest && export BOXRUN_RUNSC=$(go env GOPATH)/bin/runsc   # or `make runsc` in the repository"
		return c
	}
	out, err := exec.CommandContext(ctx, p, "--version").Output()
	if err != nil {
		c.Status, c.Detail = checkMissing, fmt.Sprintf("%s does not run: %v", p, err)
		c.Fix = "rebuild it: CGO_ENABLED=0 go install gvisor.dev/gvisor/runsc@latest"
		return c
	}
	v := strings.Join(strings.Fields(strings.ReplaceAll(string(out), "\n", "; ")), " ")
	c.Status, c.Detail = checkOK, fmt.Sprintf("%s (%s)", p, strings.TrimSuffix(v, ";"))
	return c
}

func checkInit(cfg gvisor.Config) hostCheck {
	c := hostCheck{Name: "in-box init"}
	p, err := gvisor.FindInit(cfg)
	if err != nil {
		c.Status, c.Detail = checkMissing, err.Error()
		c.Fix = "CGO_ENABLED=0 go install github.com/boxrun/boxrun/cmd/boxrun@latest"
		return c
	}
	c.Status, c.Detail = checkOK, p+" (static: runs as init in any image)"
	return c
}

func checkPrivileges() hostCheck {
	c := hostCheck{Name: "privileges"}
	if os.Geteuid() == 0 {
		c.Status, c.Detail = checkOK, "root"
		return c
	}
	if b, err := os.ReadFile("/proc/sys/kernel/unprivileged_userns_clone"); err == nil && strings.TrimSpace(string(b)) == "0" {
		c.Status, c.Detail = checkMissing, "not root and unprivileged user namespaces are disabled"
		c.Fix = "sudo sysctl -w kernel.unprivileged_userns_clone=1"
		return c
	}
	if b, err := os.ReadFile("/proc/sys/user/max_user_namespaces"); err == nil && strings.TrimSpace(string(b)) == "0" {
		c.Status, c.Detail = checkMissing, "not root and user.max_user_namespaces is 0"
		c.Fix = "sudo sysctl -w user.max_user_namespaces=15000"
		return c
	}
	c.Status, c.Detail = checkWarn, "not root: rootless mode (user namespace; no cgroup limits, no networking)"
	c.Fix = "run boxrun serve as root for limits and networking"
	return c
}

// Filesystem magic numbers of /sys/fs/cgroup.
const (
	cgroup2Magic = 0x63677270
	tmpfsMagic   = 0x01021994
)

func checkCgroups() hostCheck {
	c := hostCheck{Name: "cgroups"}
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err != nil {
		c.Status, c.Detail = checkWarn, "no /sys/fs/cgroup: CPU and memory limits are not enforced"
		c.Fix = "mount -t cgroup2 none /sys/fs/cgroup"
		return c
	}
	switch {
	case st.Type == cgroup2Magic:
		c.Status, c.Detail = checkOK, "v2 (unified)"
	case st.Type == tmpfsMagic:
		if _, err := os.Stat("/sys/fs/cgroup/unified"); err == nil {
			c.Status, c.Detail = checkOK, "v1/v2 hybrid (limits set through the v1 controllers)"
		} else {
			c.Status, c.Detail = checkOK, "v1"
		}
		if _, err := os.Stat("/sys/fs/cgroup/memory"); err != nil {
			c.Status, c.Detail = checkWarn, c.Detail+"; no memory controller: memory limits are not enforced"
			c.Fix = "boot with cgroup_enable=memory"
		}
	default:
		c.Status, c.Detail = checkWarn, fmt.Sprintf("unknown cgroup filesystem (0x%x): limits are best effort", st.Type)
	}
	return c
}

func checkTool(name, bin, what, fix, absent string) hostCheck {
	if p, err := exec.LookPath(bin); err == nil {
		return hostCheck{Name: name, Status: checkOK, Detail: p}
	}
	return hostCheck{Name: name, Status: absent, Detail: bin + " not in PATH: needed for " + what, Fix: fix}
}

func checkFile(name, path, what, fix string) hostCheck {
	if _, err := os.Stat(path); err == nil {
		return hostCheck{Name: name, Status: checkOK, Detail: path}
	}
	return hostCheck{Name: name, Status: checkOptional, Detail: path + " missing: needed for " + what, Fix: fix}
}

func checkKVM() hostCheck {
	c := hostCheck{Name: "kvm"}
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		c.Status, c.Detail = checkOptional, "no usable /dev/kvm: the qemu driver uses TCG (software emulation, slower); gVisor does not need KVM"
		return c
	}
	f.Close()
	c.Status, c.Detail = checkOK, "/dev/kvm (the qemu driver probes at start whether it really accelerates)"
	return c
}

func checkKernel() hostCheck {
	c := hostCheck{Name: "guest kernel"}
	k, err := qemu.FindKernel()
	if err != nil {
		c.Status, c.Detail = checkOptional, "no kernel in /boot for qemu guests"
		c.Fix = "apt-get install -y linux-image-cloud-amd64"
		return c
	}
	c.Status, c.Detail = checkOK, k
	return c
}

func checkDisk(stateDir string) hostCheck {
	c := hostCheck{Name: "disk"}
	dir := stateDir
	for dir != "/" {
		if _, err := os.Stat(dir); err == nil {
			break
		}
		dir = filepath.Dir(dir)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		c.Status, c.Detail = checkWarn, fmt.Sprintf("cannot read free space of %s: %v", dir, err)
		return c
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	c.Detail = fmt.Sprintf("%.1f GiB free at %s", float64(free)/(1<<30), dir)
	if free < 2<<30 {
		c.Status = checkWarn
		c.Fix = "free space or choose another --state-dir (images and box layers live there)"
		return c
	}
	c.Status = checkOK
	return c
}
