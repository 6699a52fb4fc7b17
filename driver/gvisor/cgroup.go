package gvisor

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

const cgroupRoot = "/sys/fs/cgroup"

// cgroupParent is the cgroup (relative to each hierarchy) under which runsc
// puts one cgroup per box: linux.cgroupsPath = /boxrun/<handle>.
const cgroupParent = "boxrun"

// Limits reports which resource limits the host lets the driver enforce.
type Limits struct {
	Cgroups string // "v1", "v2" or "" (none usable: runsc runs with --ignore-cgroups)
	CPU     bool   // BoxSpec CPU is enforced as a CFS quota
	Memory  bool   // BoxSpec MemoryMB is enforced as a hard memory limit
	// Rootless is true when the driver runs without root: every runsc
	// call is in a user namespace, with --ignore-cgroups, so no limit is
	// enforced (Cgroups is "", CPU and Memory false).
	Rootless bool
	// IDBase is the host ID that box root is stored as on the host (box
	// ID n is IDBase+n) for new boxes; 0 when IDs are not shifted
	// (rootless, Config.IDBase negative, or no ID-mapped mounts here).
	IDBase uint32
	// Disk is true when DiskSizeGB is enforced: each new box's writable
	// layer is a file system of that size (root only, with mkfs.ext4 and
	// loop devices, and with shifted IDs).
	Disk bool
}

// detectLimits looks at the host's cgroup mounts. On a v1/v2 hybrid (v1
// controllers, a mostly empty unified hierarchy) runsc uses v1.
func detectLimits() Limits {
	var fsStat syscall.Statfs_t
	if err := syscall.Statfs(cgroupRoot, &fsStat); err == nil && fsStat.Type == 0x63677270 { // CGROUP2_SUPER_MAGIC
		ctrls, _ := os.ReadFile(filepath.Join(cgroupRoot, "cgroup.controllers"))
		f := strings.Fields(string(ctrls))
		has := func(c string) bool {
			for _, x := range f {
				if x == c {
					return true
				}
			}
			return false
		}
		return Limits{Cgroups: "v2", CPU: has("cpu"), Memory: has("memory")}
	}
	exists := func(p string) bool { _, err := os.Stat(p); return err == nil }
	l := Limits{
		CPU:    exists(filepath.Join(cgroupRoot, "cpu", "cpu.cfs_quota_us")),
		Memory: exists(filepath.Join(cgroupRoot, "memory", "memory.limit_in_bytes")),
	}
	if l.CPU || l.Memory {
		l.Cgroups = "v1"
	}
	return l
}

// cgroupsPath is the OCI linux.cgroupsPath of a box.
func cgroupsPath(handle string) string { return "/" + cgroupParent + "/" + handle }

// removeCgroups removes the (empty) cgroup directories of a box that runsc
// left behind, in every hierarchy. Missing directories are fine. Processes
// still in them are killed first.
func removeCgroups(handle string) error {
	dirs := []string{filepath.Join(cgroupRoot, cgroupParent, handle)}
	if ents, err := os.ReadDir(cgroupRoot); err == nil {
		for _, e := range ents {
			dirs = append(dirs, filepath.Join(cgroupRoot, e.Name(), cgroupParent, handle))
		}
	}
	var errs []error
	for _, dir := range dirs {
		if _, err := os.Stat(dir); err != nil {
			continue
		}
		// Killed processes take a moment to leave the cgroup (EBUSY).
		var err error
		for i := 0; i < 100; i++ {
			killCgroupProcs(dir)
			if err = syscall.Rmdir(dir); !errors.Is(err, syscall.EBUSY) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, &os.PathError{Op: "rmdir", Path: dir, Err: err})
		}
	}
	return errors.Join(errs...)
}

// killCgroupProcs SIGKILLs every process listed in dir/cgroup.procs.
func killCgroupProcs(dir string) {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return
	}
	for _, f := range strings.Fields(string(b)) {
		if pid := atoiPositive(f); pid > 0 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

func atoiPositive(s string) int {
	n := 0
	for _, c := range strings.TrimSpace(s) {
		if c < '0' || c > '9' {
			return 0
		}
		n = n*10 + int(c-'0')
		if n > 1<<22 {
			return 0
		}
	}
	return n
}

// statBlocks returns the 512-byte blocks, inode and link count of info.
func statBlocks(info fs.FileInfo) (blocks int64, ino, nlink uint64) {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return st.Blocks, st.Ino, uint64(st.Nlink)
	}
	return 0, 0, 1
}
