package main

import (
	"flag"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/boxrun/boxrun"
)

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// megabytes is a memory flag in MiB: a plain number is MiB; suffixes k, m,
// g (Docker style, case-insensitive, optional trailing "b") scale it.
type megabytes int64

func (m *megabytes) String() string { return strconv.FormatInt(int64(*m), 10) }

func (m *megabytes) Set(v string) error {
	s := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(v)), "b")
	mul, div := int64(1), int64(1)
	switch {
	case strings.HasSuffix(s, "k"):
		s, div = s[:len(s)-1], 1024
	case strings.HasSuffix(s, "m"):
		s = s[:len(s)-1]
	case strings.HasSuffix(s, "g"):
		s, mul = s[:len(s)-1], 1024
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("bad memory size %q (want MiB, or a number with k/m/g)", v)
	}
	*m = megabytes(n * mul / div)
	return nil
}

// boxFlags are the Docker-like flags that describe a box.
type boxFlags struct {
	name    string
	cpus    int64
	memory  megabytes
	disk    int64
	network bool
	workdir string
	env     stringList
	volumes stringList
	pull    string
	publish stringList
	egress  egressFlags

	ttl, idle time.Duration
	onExpire  string
}

// register adds the flags; withName and withWorkdir select the optional ones.
func (b *boxFlags) register(fs *flag.FlagSet, withName, withWorkdir bool) {
	if withName {
		fs.StringVar(&b.name, "name", "", "box name (unique)")
		fs.StringVar(&b.name, "n", "", "shorthand for --name")
	}
	fs.Int64Var(&b.cpus, "cpus", boxrun.DefaultCPU, "vCPUs")
	fs.Int64Var(&b.cpus, "cpu", boxrun.DefaultCPU, "alias of --cpus")
	b.memory = boxrun.DefaultMemoryMB
	fs.Var(&b.memory, "memory", "memory in MiB, or with a k/m/g suffix (default 1024)")
	fs.Var(&b.memory, "m", "shorthand for --memory")
	fs.Int64Var(&b.disk, "disk", boxrun.DefaultDiskSizeGB, "disk size in GiB")
	fs.BoolVar(&b.network, "network", false, "give the box network access (default: loopback only)")
	fs.Var(&b.env, "env", "environment variable K=V (repeatable)")
	fs.Var(&b.env, "e", "shorthand for --env")
	fs.Var(&b.volumes, "volume", "mount host:guest[:ro|:rw] (repeatable)")
	fs.Var(&b.volumes, "v", "shorthand for --volume")
	fs.StringVar(&b.pull, "pull", "missing", "when to pull the image: missing (use a cached or loaded image), always (ask the registry) or never (fail if not cached)")
	fs.Var(&b.publish, "publish", "publish a box TCP port on the host: [HOSTIP:][HOSTPORT:]BOXPORT (repeatable; host loopback by default, a free host port without HOSTPORT; needs --network)")
	fs.Var(&b.publish, "p", "shorthand for --publish")
	b.egress.register(fs)
	fs.DurationVar(&b.ttl, "ttl", 0, "stop the box this long after it starts, e.g. 30m (default: the server's, none)")
	fs.DurationVar(&b.idle, "idle-timeout", 0, "stop the box after this long without exec, attach or copy (default: the server's, none)")
	fs.StringVar(&b.onExpire, "on-expire", "", "what ttl and idle timeout do: stop (default), remove, or hibernate (resumed by the next exec, cp, attach or start)")
	if withWorkdir {
		fs.StringVar(&b.workdir, "workdir", "", "default working directory (default /root)")
		fs.StringVar(&b.workdir, "w", "", "shorthand for --workdir")
	}
}

// spec builds the BoxSpec for image.
func (b *boxFlags) spec(image string) (boxrun.BoxSpec, error) {
	env, err := parseEnv(b.env)
	if err != nil {
		return boxrun.BoxSpec{}, err
	}
	vols, err := parseVolumes(b.volumes)
	if err != nil {
		return boxrun.BoxSpec{}, err
	}
	pull := boxrun.PullPolicy(b.pull)
	switch pull {
	case boxrun.PullAlways, boxrun.PullMissing, boxrun.PullNever:
	default:
		return boxrun.BoxSpec{}, usagef("invalid --pull %q (want missing, always or never)", b.pull)
	}
	ports, err := parsePorts(b.publish)
	if err != nil {
		return boxrun.BoxSpec{}, err
	}
	return boxrun.BoxSpec{
		Image: resolveImage(image), Name: b.name, CPU: b.cpus, MemoryMB: int64(b.memory),
		DiskSizeGB: b.disk, Network: b.network, Workdir: b.workdir, Env: env, Volumes: vols,
		Pull:  pull,
		Ports: ports, Egress: b.egress.policy(),
		TTL: b.ttl, IdleTimeout: b.idle, OnExpire: boxrun.ExpireAction(b.onExpire),
	}, nil
}

// parseEnv turns K=V items into a map (nil when there are none). A bare K
// is an error.
func parseEnv(items []string) (map[string]string, error) {
	if len(items) == 0 {
		return nil, nil
	}
	env := make(map[string]string, len(items))
	for _, kv := range items {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usagef("invalid environment variable %q (want KEY=VALUE)", kv)
		}
		env[k] = v
	}
	return env, nil
}

// parseVolumes parses /host:/guest[:ro|:rw] (spec §14.2).
func parseVolumes(items []string) ([]boxrun.Volume, error) {
	var vols []boxrun.Volume
	for _, item := range items {
		parts := strings.Split(item, ":")
		if len(parts) < 2 || len(parts) > 3 {
			return nil, usagef("Invalid volume format: %s (want /host:/guest[:ro])", item)
		}
		v := boxrun.Volume{HostPath: parts[0], GuestPath: parts[1]}
		if v.HostPath == "" || v.GuestPath == "" || !path.IsAbs(v.GuestPath) || !path.IsAbs(v.HostPath) {
			return nil, usagef("Invalid volume: %s (both paths must be absolute)", item)
		}
		if len(parts) == 3 {
			switch parts[2] {
			case "ro":
				v.Readonly = true
			case "rw":
			default:
				return nil, usagef("Invalid volume mode: %s", parts[2])
			}
		}
		vols = append(vols, v)
	}
	return vols, nil
}

// imageAlias is an entry of the client-side alias catalog (spec §12.3).
type imageAlias struct{ alias, image, description string }

// imageAliases is the catalog, in the original's order.
func imageAliases() []imageAlias {
	return []imageAlias{
		{"default", "ubuntu:24.04", "Ubuntu 24.04 (general purpose, recommended)"},
		{"ubuntu", "ubuntu:24.04", "Ubuntu 24.04 LTS"},
		{"python", "python:3.12-slim", "Python 3.12 pre-installed"},
		{"node", "node:22-slim", "Node.js 22 LTS pre-installed"},
		{"golang", "golang:1.22", "Go 1.22 pre-installed"},
		{"rust", "rust:1.77-slim", "Rust 1.77 pre-installed"},
		{"alpine", "alpine:3.20", "Lightweight Linux (5MB)"},
	}
}

// resolveImage maps an alias to its image; other names pass unchanged.
func resolveImage(name string) string {
	for _, a := range imageAliases() {
		if a.alias == name {
			return a.image
		}
	}
	return name
}

// interspersed parses flags that follow positional arguments (as Docker
// does: `boxrun rm mybox -f`) and returns the positionals. Everything after
// "--" is positional.
func interspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for len(args) > 0 {
		a := args[0]
		if a == "--" {
			return append(pos, args[1:]...), nil
		}
		if len(a) < 2 || a[0] != '-' {
			pos = append(pos, a)
			args = args[1:]
			continue
		}
		if err := fs.Parse(args); err != nil {
			return nil, &usageError{err.Error()}
		}
		rest := fs.Args()
		consumed := args[:len(args)-len(rest)]
		args = rest
		if len(consumed) > 0 && consumed[len(consumed)-1] == "--" {
			return append(pos, args...), nil
		}
	}
	return pos, nil
}

// sortedKeys returns the keys of m in order.
func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
