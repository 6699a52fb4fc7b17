package gvisor

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/driver/gvisor/boxinit"
	"github.com/boxrun/boxrun/driver/gvisor/internal/rootfs"
	"github.com/boxrun/boxrun/internal/userdb"
	"github.com/boxrun/boxrun/sandbox"
)

// handleLen is the length of a handle: fixed, so that no handle is a prefix
// of another (runsc matches IDs by prefix).
const handleLen = 16

const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// initMount is where the helper appears inside every box.
const initMount = boxinit.InitMount

// resolvConfPath is where a networked box finds its resolver config (a
// read-only bind mount naming the box's own resolver).
const resolvConfPath = "/etc/resolv.conf"

// boxMeta is what the driver remembers about a box across restarts of the
// host process: <Dir>/boxes/<handle>/box.json.
type boxMeta struct {
	BoxID    string          `json:"box_id"`
	Lower    string          `json:"lower"` // the image rootfs, or <Dir>/empty
	CPU      int64           `json:"cpu"`
	MemoryMB int64           `json:"memory_mb"`
	Network  bool            `json:"network"`
	Workdir  string          `json:"workdir"`
	Env      []string        `json:"env"`
	Volumes  []boxapi.Volume `json:"volumes"`
	// User is SandboxSpec.User resolved in the image at Create: the
	// default user of execs (zero, with an empty Home, in boxes made
	// before it existed: root).
	User userdb.User `json:"user"`
	// Shift is how the box's IDs are stored on the host; nil for boxes
	// with unshifted IDs (rootless, made before shifting, or shifting
	// off). It also selects the layout of the writable layer (layer.go).
	Shift *rootfs.IDShift `json:"id_shift,omitempty"`
	// DiskGB is the size of the box's disk image (0: none, the layer is
	// limited by the host's file system only).
	DiskGB int64 `json:"disk_gb,omitempty"`
	netFields
}

func newHandle() (string, error) {
	var b [handleLen / 2]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

// validHandle reports whether h looks like a handle this driver made.
func validHandle(h string) bool {
	if len(h) != handleLen {
		return false
	}
	for _, c := range h {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func (d *Driver) boxDir(h string) string   { return filepath.Join(d.boxesDir, h) }
func (d *Driver) rootfs(h string) string   { return filepath.Join(d.boxesDir, h, "rootfs") }
func (d *Driver) metaPath(h string) string { return filepath.Join(d.boxesDir, h, "box.json") }

func (d *Driver) readMeta(h string) (*boxMeta, error) {
	b, err := os.ReadFile(d.metaPath(h))
	if err != nil {
		return nil, err
	}
	var m boxMeta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("read %s: %w", d.metaPath(h), err)
	}
	return &m, nil
}

// writeFileAtomic writes data to path through a temporary file and rename.
func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// mergeEnv returns env with later KEY=VALUE entries overriding earlier ones
// of the same key, in first-seen order, and with a default PATH.
func mergeEnv(env ...[]string) []string {
	idx := map[string]int{}
	var out []string
	for _, list := range env {
		for _, kv := range list {
			k, _, _ := strings.Cut(kv, "=")
			if i, ok := idx[k]; ok {
				out[i] = kv
				continue
			}
			idx[k] = len(out)
			out = append(out, kv)
		}
	}
	if _, ok := idx["PATH"]; !ok {
		out = append([]string{defaultPath}, out...)
	}
	return out
}

// validateSpec checks what the driver needs from a SandboxSpec.
func validateSpec(spec sandbox.Spec) error {
	if spec.Image != nil && !filepath.IsAbs(spec.Image.Rootfs) {
		return fmt.Errorf("gvisor: image rootfs %q is not absolute: %w", spec.Image.Rootfs, boxapi.ErrInvalid)
	}
	if spec.Workdir != "" && !filepath.IsAbs(spec.Workdir) {
		return fmt.Errorf("gvisor: workdir %q is not absolute: %w", spec.Workdir, boxapi.ErrInvalid)
	}
	if spec.CPU < 0 || spec.MemoryMB < 0 || spec.DiskSizeGB < 0 {
		return fmt.Errorf("gvisor: negative limits: %w", boxapi.ErrInvalid)
	}
	for _, kv := range spec.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return fmt.Errorf("gvisor: env entry %q is not KEY=VALUE: %w", kv, boxapi.ErrInvalid)
		}
	}
	for _, v := range spec.Volumes {
		if !filepath.IsAbs(v.HostPath) || !filepath.IsAbs(v.GuestPath) {
			return fmt.Errorf("gvisor: volume paths must be absolute (%q:%q): %w", v.HostPath, v.GuestPath, boxapi.ErrInvalid)
		}
		if g := filepath.Clean(v.GuestPath); g == "/" || g == "/.boxrun" || strings.HasPrefix(g, "/.boxrun/") {
			return fmt.Errorf("gvisor: volume guest path %q is reserved: %w", v.GuestPath, boxapi.ErrInvalid)
		}
		if _, err := os.Stat(v.HostPath); err != nil {
			return fmt.Errorf("gvisor: volume host path: %w: %w", err, boxapi.ErrInvalid)
		}
	}
	return nil
}

// ociSpec is the part of the OCI runtime spec the driver writes.
type ociSpec struct {
	OCIVersion string            `json:"ociVersion"`
	Process    ociProcess        `json:"process"`
	Root       ociRoot           `json:"root"`
	Hostname   string            `json:"hostname"`
	Mounts     []ociMount        `json:"mounts"`
	Linux      ociLinux          `json:"linux"`
	Annots     map[string]string `json:"annotations,omitempty"`
}

type ociProcess struct {
	Terminal     bool                `json:"terminal"`
	User         ociUser             `json:"user"`
	Args         []string            `json:"args"`
	Env          []string            `json:"env"`
	Cwd          string              `json:"cwd"`
	Capabilities map[string][]string `json:"capabilities"`
	Rlimits      []ociRlimit         `json:"rlimits"`
	OOMScoreAdj  *int                `json:"oomScoreAdj,omitempty"`
}

type ociRlimit struct {
	Type string `json:"type"`
	Hard uint64 `json:"hard"`
	Soft uint64 `json:"soft"`
}

type ociRoot struct {
	Path     string `json:"path"`
	Readonly bool   `json:"readonly"`
}

type ociMount struct {
	Destination string   `json:"destination"`
	Type        string   `json:"type"`
	Source      string   `json:"source"`
	Options     []string `json:"options,omitempty"`
}

type ociLinux struct {
	Namespaces  []ociNamespace `json:"namespaces"`
	CgroupsPath string         `json:"cgroupsPath,omitempty"`
	Resources   *ociResources  `json:"resources,omitempty"`
}

type ociNamespace struct {
	Type string `json:"type"`
	Path string `json:"path,omitempty"`
}

type ociResources struct {
	Memory *struct {
		Limit int64 `json:"limit"`
	} `json:"memory,omitempty"`
	CPU *struct {
		Quota  int64  `json:"quota"`
		Period uint64 `json:"period"`
	} `json:"cpu,omitempty"`
}

// sandboxOOMScoreAdj is the oom_score_adj runsc gives a box's sandbox (the
// sentry) and gofer once it runs. The systrap stub processes, which map the
// box's memory too, are forked before that and keep the driver's score, so
// when a box outgrows its memory cgroup the kernel's OOM killer picks the
// sentry, and the box dies as a whole (and is reported "out of memory")
// instead of one in-box process being killed with a bare SIGKILL.
const sandboxOOMScoreAdj = 1000

// defaultCaps returns Docker's default capability set.
func defaultCaps() []string {
	return []string{
		"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
		"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
		"CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
	}
}

// bundleConfig builds the config.json of a box.
func (d *Driver) bundleConfig(h string, m *boxMeta) ociSpec {
	caps := map[string][]string{}
	for _, set := range []string{"bounding", "effective", "permitted"} {
		caps[set] = defaultCaps()
	}
	s := ociSpec{
		OCIVersion: "1.0.2",
		Process: ociProcess{
			Args:         []string{initMount, "init", d.stopGrace.String()},
			Env:          m.Env,
			Cwd:          "/",
			Capabilities: caps,
			Rlimits:      []ociRlimit{{Type: "RLIMIT_NOFILE", Hard: 1 << 20, Soft: 1 << 20}},
			OOMScoreAdj:  new(sandboxOOMScoreAdj),
		},
		Root:     ociRoot{Path: d.rootfs(h), Readonly: false},
		Hostname: hostname(m.BoxID, h),
		Mounts: []ociMount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
			{Destination: initMount, Type: "bind", Source: d.initPath, Options: []string{"rbind", "ro"}},
			{Destination: boxinit.AgentDir, Type: "bind", Source: d.agentDir(h), Options: []string{"rbind", "rw", "nosuid", "nodev", "noexec"}},
		},
		Linux: ociLinux{
			Namespaces: []ociNamespace{{Type: "pid"}, {Type: "ipc"}, {Type: "uts"}, {Type: "mount"}},
		},
	}
	if !m.Network {
		// --network=none with a namespace: loopback only.
		s.Linux.Namespaces = append(s.Linux.Namespaces, ociNamespace{Type: "network"})
	} else if m.Net != nil {
		// The box's own namespace (see network.go), and its resolver.
		s.Linux.Namespaces = append(s.Linux.Namespaces, ociNamespace{Type: "network", Path: m.Net.NetNS})
		s.Mounts = append(s.Mounts, ociMount{Destination: resolvConfPath, Type: "bind", Source: d.resolvConf(h), Options: []string{"rbind", "ro"}})
	}
	for i, v := range m.Volumes {
		opt := "rw"
		if v.Readonly {
			opt = "ro"
		}
		s.Mounts = append(s.Mounts, ociMount{Destination: filepath.Clean(v.GuestPath), Type: "bind", Source: d.volumeSource(h, m, i), Options: []string{"rbind", opt, "nosuid", "nodev"}})
	}
	if d.limits.Cgroups != "" {
		s.Linux.CgroupsPath = cgroupsPath(h)
		res := &ociResources{}
		if d.limits.Memory && m.MemoryMB > 0 {
			res.Memory = &struct {
				Limit int64 `json:"limit"`
			}{Limit: m.MemoryMB << 20}
		}
		if d.limits.CPU && m.CPU > 0 {
			res.CPU = &struct {
				Quota  int64  `json:"quota"`
				Period uint64 `json:"period"`
			}{Quota: m.CPU * 100000, Period: 100000}
		}
		if res.Memory != nil || res.CPU != nil {
			s.Linux.Resources = res
		}
	}
	return s
}

// hostname is the box's host name: its box ID when that is a valid name.
func hostname(boxID, h string) string {
	if boxID == "" || len(boxID) > 63 {
		return "box-" + h
	}
	for _, c := range boxID {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return "box-" + h
		}
	}
	return boxID
}

// resolveUser resolves a SandboxSpec.User in the rootfs lower (the image):
// a name missing from its /etc/passwd or /etc/group, or a malformed spec,
// is an error wrapping ErrInvalid.
func resolveUser(lower, spec string) (userdb.User, error) {
	u, err := userdb.Resolve(lower, spec)
	switch {
	case errors.Is(err, userdb.ErrUnknown), errors.Is(err, userdb.ErrSyntax):
		return u, fmt.Errorf("gvisor: user %q: %w: %w", spec, err, boxapi.ErrInvalid)
	case err != nil:
		return u, fmt.Errorf("gvisor: user %q: %w", spec, err)
	}
	return u, nil
}
