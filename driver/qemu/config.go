package qemu

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/boxrun/boxrun/internal/binpath"
)

// Names and environment variables of the host files the driver needs.
const (
	AgentName = "boxrun-qemu-agent" // the static guest agent (package agent)
	AgentEnv  = "BOXRUN_QEMU_AGENT"

	// AgentPackage is the import path of the guest agent, for BuildAgent.
	AgentPackage = "github.com/boxrun/boxrun/driver/qemu/agent"
)

// Accelerators (Config.Accel, Driver.Accel).
const (
	AccelAuto = "auto" // KVM when it really works here, else TCG
	AccelKVM  = "kvm"
	AccelTCG  = "tcg"
)

// ErrUnsupported is wrapped by New when the driver cannot run on this host
// (no QEMU, no guest kernel, no agent). Tests match it with errors.Is to skip.
var ErrUnsupported = errors.New("qemu: unsupported on this host")

// Config configures a Driver. Every field except Dir has a usable zero value.
type Config struct {
	// Dir is the driver's state directory (required), created if missing.
	// It must not be shared with another Driver running at the same time.
	Dir string

	// QEMU is the qemu-system-x86_64 binary. Default: "qemu-system-x86_64"
	// in PATH.
	QEMU string

	// Kernel is the guest kernel image. Default: the newest
	// /boot/vmlinuz-*-cloud-amd64, else the newest /boot/vmlinuz-*.
	// Debian's linux-image-cloud-amd64 is the tested kernel.
	Kernel string

	// Modules is the kernel's module directory, from which the virtio
	// modules are copied into the initramfs. Default:
	// /lib/modules/<version>, the version taken from the kernel file name
	// (vmlinuz-<version>).
	Modules string

	// Agent is the static guest agent binary (package agent). If empty:
	// $BOXRUN_QEMU_AGENT, else <Dir>/../bin/boxrun-qemu-agent, else
	// "boxrun-qemu-agent" next to os.Executable(), else in PATH. The boxrun
	// CLI ships it next to its own binary; tests build it with BuildAgent.
	Agent string

	// Accel is the accelerator: AccelAuto (default), AccelKVM or AccelTCG.
	// Auto uses KVM only when /dev/kvm is backed by hardware virtualization
	// (vmx or svm in the CPU flags and a kvm_intel or kvm_amd module;
	// software backends such as kvm_pvm cannot run stock kernels) and a
	// test boot in New succeeds with it.
	Accel string

	// ColdBoot disables snapshot boots: every boot runs the kernel from
	// the start. By default the first boot of each shape (CPUs, memory,
	// disk size) makes a template snapshot under <Dir>/templates, and
	// later boots of that shape restore it (see the package doc).
	ColdBoot bool

	// NetPool is the IPv4 range the links of networked boxes are allocated
	// from (one /30 per running box; shared with the gVisor driver and every
	// other BoxRun process on the host). Default 10.223.0.0/16.
	NetPool string

	// DNS lists the upstream resolvers ("ip" or "ip:port") that the
	// resolver of networked boxes forwards allowed lookups to. Default: the
	// nameservers of the host's /etc/resolv.conf.
	DNS []string

	// Logger receives the driver's logs (boots, the accelerator chosen,
	// cleanups). Default: discard.
	Logger *slog.Logger
}

// findAgent resolves the agent by the lookup order documented on Config.
// It need not be executable on the host: it is copied into the initramfs.
func findAgent(explicit, dir string) (string, error) {
	p, err := binpath.Find(binpath.Spec{Name: AgentName, Explicit: explicit, EnvVar: AgentEnv, Dir: dir})
	if err != nil {
		return "", fmt.Errorf("%w (build it with qemu.BuildAgent or `CGO_ENABLED=0 go build -o bin/%s ./driver/qemu/agent`): %w",
			err, AgentName, ErrUnsupported)
	}
	return p, nil
}

// BuildAgent builds the static guest agent into dst with the go tool in
// PATH (CGO_ENABLED=0, GOOS=linux, GOARCH=amd64, stripped). It must run
// inside the boxrun module (tests, CI, release scripts); the driver itself
// never builds anything.
func BuildAgent(ctx context.Context, dst string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", dst, AgentPackage)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("qemu: build %s: %w: %s", AgentPackage, err, out)
	}
	return nil
}

// FindKernel returns the default guest kernel: the newest
// /boot/vmlinuz-*-cloud-amd64, else the newest /boot/vmlinuz-*. It wraps
// ErrUnsupported when there is none.
func FindKernel() (string, error) {
	for _, pat := range []string{"/boot/vmlinuz-*-cloud-amd64", "/boot/vmlinuz-*"} {
		m, _ := filepath.Glob(pat)
		if len(m) == 0 {
			continue
		}
		slices.SortFunc(m, compareVersions)
		return m[len(m)-1], nil
	}
	return "", fmt.Errorf("no guest kernel in /boot (apt-get install linux-image-cloud-amd64): %w", ErrUnsupported)
}

// compareVersions orders kernel file names by their numeric fields.
func compareVersions(a, b string) int {
	fa, fb := versionFields(a), versionFields(b)
	for i := 0; i < len(fa) && i < len(fb); i++ {
		if fa[i] != fb[i] {
			return fa[i] - fb[i]
		}
	}
	return len(fa) - len(fb)
}

func versionFields(s string) []int {
	var out []int
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r < '0' || r > '9' }) {
		n, _ := strconv.Atoi(f)
		out = append(out, n)
	}
	return out
}

// kernelVersion returns <version> of a kernel named vmlinuz-<version>.
func kernelVersion(kernel string) string {
	base := filepath.Base(kernel)
	if v, ok := strings.CutPrefix(base, "vmlinuz-"); ok {
		return v
	}
	return ""
}

// tscKHz derives the guest's early TSC frequency from the host's
// /proc/cpuinfo ("cpu MHz"): without it an emulated microvm can fail to
// calibrate its TSC and hang at boot. It returns 0 when unknown.
func tscKHz() int64 {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || strings.TrimSpace(k) != "cpu MHz" {
			continue
		}
		mhz, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || mhz <= 0 {
			return 0
		}
		return int64(mhz * 1000)
	}
	return 0
}

// probeKVM reports whether /dev/kvm is hardware KVM that can boot a stock
// kernel, and why not. It is fast: CPU flags, the KVM vendor module, and
// opening /dev/kvm.
func probeKVM() (bool, string) {
	cpuinfo, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return false, "cannot read /proc/cpuinfo"
	}
	hasFlag := false
	for line := range strings.Lines(string(cpuinfo)) {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "flags" {
			fields := strings.Fields(v)
			hasFlag = slices.Contains(fields, "vmx") || slices.Contains(fields, "svm")
			break
		}
	}
	if !hasFlag {
		return false, "CPU has no vmx/svm flag"
	}
	vendor := false
	for _, m := range []string{"kvm_intel", "kvm_amd"} {
		if _, err := os.Stat("/sys/module/" + m); err == nil {
			vendor = true
		}
	}
	if !vendor {
		return false, "no kvm_intel or kvm_amd module (software KVM such as kvm_pvm cannot boot stock kernels)"
	}
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return false, fmt.Sprintf("cannot open /dev/kvm: %v", err)
	}
	f.Close()
	return true, "hardware KVM"
}

func discardLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}
