// Package mountutil lists and removes the host mounts a driver makes under
// its state directory (overlay roots, read-only volume binds), from
// /proc/self/mountinfo. It imports nothing of boxrun.
package mountutil

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Under lists the mount points at or below dir, deepest first: children
// before their parents, and of mounts stacked on one point the later first.
func Under(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := Unescape(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	slices.Reverse(out) // mountinfo lists in mount order
	slices.SortStableFunc(out, func(a, b string) int { return len(b) - len(a) })
	return out, nil
}

// IsMounted reports whether something is mounted exactly at dir.
func IsMounted(dir string) bool {
	ms, err := Under(dir)
	return err == nil && slices.Contains(ms, dir)
}

// Unescape undoes the octal escapes (\040 for a space, ...) of a path in
// /proc/self/mountinfo.
func Unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Unmount unmounts target until nothing is mounted there. A busy mount is
// retried for a moment (200ms) and then detached lazily. Target not being
// a mount point is not an error.
func Unmount(target string) error {
	for i := 0; ; i++ {
		err := unix.Unmount(target, 0)
		switch {
		case err == nil:
			continue
		case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
			return nil // not a mount point (any more)
		case errors.Is(err, unix.EBUSY) && i < 20:
			time.Sleep(10 * time.Millisecond)
		case errors.Is(err, unix.EBUSY):
			if err := unix.Unmount(target, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
				return fmt.Errorf("unmount %s: %w", target, err)
			}
		default:
			return fmt.Errorf("unmount %s: %w", target, err)
		}
	}
}

// UnmountUnder unmounts everything at or below dir (see Unmount). It fails
// when a mount stays, so that a later RemoveAll of dir never deletes files
// of a mounted host directory.
func UnmountUnder(dir string) error {
	ms, err := Under(dir)
	if err != nil {
		return fmt.Errorf("list mounts: %w", err)
	}
	var errs []error
	for _, mp := range ms {
		errs = append(errs, Unmount(mp))
	}
	if left, err := Under(dir); err != nil || len(left) > 0 {
		errs = append(errs, fmt.Errorf("%s still has mounts %v (%v)", dir, left, err))
	}
	return errors.Join(errs...)
}
