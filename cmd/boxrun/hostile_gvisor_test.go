package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCLI_Hostile runs the CLI against a gVisor-backed server with a box
// that attacks the host through copies out of it, and checks that binary
// output comes out byte-exact.
func TestCLI_Hostile(t *testing.T) {
	bin := buildCLI(t)
	state := t.TempDir()
	env := gvisorEnv(t, state)
	sock := filepath.Join(state, "boxrun.sock")
	ln, err := net.Listen("unix", sock) // a stale socket: the CLI auto-starts a server there
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	cli := func(stdin string, args ...string) cliResult { t.Helper(); return cliProc(t, env, stdin, bin, args...) }
	t.Cleanup(func() {
		cli("", "rm", "-f", "h")
		for _, pid := range serverPIDs(bin, sock) {
			syscall.Kill(pid, syscall.SIGTERM)
			for i := 0; i < 100 && syscall.Kill(pid, 0) == nil; i++ {
				time.Sleep(100 * time.Millisecond)
			}
		}
	})
	img := filepath.Join(t.TempDir(), "busybox-oci")
	if r := cli("", "images", "build-busybox", img); r.code != 0 {
		t.Fatalf("build-busybox: %+v", r)
	}
	if r := cli("", "create", "--name", "h", "oci:"+img); r.code != 0 {
		t.Fatalf("create: %+v\nserver log: %s", r, lastLines(filepath.Join(state, "boxrun.log"), 20))
	}
	t.Run("BinaryOutput", func(t *testing.T) { testBinaryOutput(t, cli) })
	t.Run("HostileCopyOut", func(t *testing.T) { testHostileCopyOut(t, cli) })
	t.Run("Watch", func(t *testing.T) { testWatch(t, cli, env, bin) })
	t.Run("ForgedTar", func(t *testing.T) { testForgedTar(t, cli) }) // last: it subverts the box's helper
}

// testWatch: `boxrun watch` prints the changes made in the box, one line
// each, exits 0 on Ctrl-C, and fails clearly on a missing path.
func testWatch(t *testing.T, cli func(string, ...string) cliResult, env []string, bin string) {
	if r := cli("", "exec", "h", "mkdir", "-p", "/root/wd"); r.code != 0 {
		t.Fatalf("mkdir: %+v", r)
	}
	if r := cli("", "watch", "h", "/root/nope"); r.code == 0 || !strings.Contains(r.stderr, "not found") {
		t.Fatalf("watch of a missing path: %+v", r)
	}
	cmd := exec.Command(bin, "watch", "--json", "h", "/root/wd")
	cmd.Env = env
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	next := func() string {
		select {
		case l := <-lines:
			return l
		case <-time.After(60 * time.Second):
			t.Fatal("no watch line within 60s")
		}
		return ""
	}
	if l := next(); !strings.Contains(l, `"type":"ready"`) {
		t.Fatalf("first line %q", l)
	}
	if r := cli("", "exec", "h", "sh", "-c", "echo x > /root/wd/f && mv /root/wd/f /root/wd/g && rm /root/wd/g"); r.code != 0 {
		t.Fatalf("changes: %+v", r)
	}
	for _, want := range []string{`"seq":1,"type":"created","path":"/root/wd/f"`, `"seq":2,"type":"modified","path":"/root/wd/f"`,
		`"seq":3,"type":"renamed","path":"/root/wd/g","old_path":"/root/wd/f"`, `"seq":4,"type":"removed","path":"/root/wd/g"`} {
		if l := next(); !strings.Contains(l, want) {
			t.Fatalf("line %q, want %s", l, want)
		}
	}
	cmd.Process.Signal(os.Interrupt)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("watch after Ctrl-C: %v", err)
	}
}

// testForgedTar: box root replaces the in-box copy helper, so the tar
// stream of a copy-out is one the box forged: a symlink to the parent and
// an entry through it, an absolute symlink to a host directory and an
// entry through it, a setuid file and a device node. It moves /.boxrun
// away (the read-only helper mount goes with it), puts its own script at
// /.boxrun/init and kills the agent: the agent restarts as that script,
// and copies fall back to `runsc exec /.boxrun/init tar-c`, i.e. the
// script. The copy must not create or change anything outside the named
// target on the host.
func testForgedTar(t *testing.T, cli func(string, ...string) cliResult) {
	base := t.TempDir()
	out := filepath.Join(base, "out")
	victim := filepath.Join(base, "victim")
	writeFile(t, filepath.Join(out, ".bashrc"), "mine\n")
	writeFile(t, filepath.Join(victim, "f"), "host\n")
	before := snapshot(t, base)
	forge := "set -e; mkdir -p /forge/res " + victim + " && cd /forge && echo pwned > .bashrc && echo pwned > " + victim + "/f && " +
		"ln -s .. res/up && ln -s " + victim + " res/abs && echo x > res/suid && chmod 4755 res/suid && " +
		"(mknod res/mem c 1 1 || true) && echo forged > res/forged && " +
		"tar -cf /forged.tar res/forged res/suid res/up res/up/.bashrc $(test -e res/mem && echo res/mem) && " +
		"tar -cf /forged2.tar res/abs res/abs/f && " +
		"rm res/forged && tar -tvf /forged.tar && tar -tvf /forged2.tar"
	r := cli("", "exec", "h", "sh", "-c", forge)
	if r.code != 0 {
		t.Fatalf("forge: %+v", r)
	}
	t.Logf("forged archive:\n%s", r.stdout)
	subvert := `set -e; mv /.boxrun /.boxrun-real && mkdir /.boxrun && ` +
		`printf '#!/bin/sh\ncase "$1" in tar-c) cat /forged.tar;; *) exec sleep 100000;; esac\n' > /.boxrun/init && chmod 755 /.boxrun/init && ` +
		`(sleep 0.2; for p in /proc/[0-9]*; do case "$(tr '\0' ' ' < $p/cmdline 2>/dev/null)" in "/.boxrun/init agent"*) kill -KILL ${p#/proc/};; esac; done) >/dev/null 2>&1 &`
	if r := cli("", "exec", "h", "sh", "-c", subvert); r.code != 0 {
		t.Fatalf("subvert: %+v", r)
	}
	// Until the agent is gone, copies are still honest (and have no
	// res/forged); the machine is loaded, so wait generously.
	for deadline := time.Now().Add(30 * time.Second); ; {
		time.Sleep(300 * time.Millisecond)
		r = cli("", "cp", "h:/forge/res", out+"/")
		if _, err := os.Lstat(filepath.Join(out, "res", "forged")); err == nil || strings.Contains(r.stderr, "escapes the destination") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the copy never came from the forged stream; last: %+v", r)
		}
	}
	t.Logf("cp of the forged stream: exit %d: %s%s", r.code, r.stdout, r.stderr)
	if r.code == 0 {
		t.Errorf("cp of a forged stream that escapes exited 0: %s", r.stdout)
	}
	// The second forgery writes through an absolute symlink to a host
	// directory.
	if r := cli("", "exec", "h", "cp", "/forged2.tar", "/forged.tar"); r.code != 0 {
		t.Fatalf("switch archives: %+v", r)
	}
	r = cli("", "cp", "h:/forge/res", filepath.Join(out, "res2"))
	t.Logf("cp of the second forged stream: exit %d: %s%s", r.code, r.stdout, r.stderr)
	if r.code == 0 || !strings.Contains(r.stderr, "escapes") {
		t.Errorf("cp through a forged absolute symlink: exit %d %q, want an escape error", r.code, r.stderr)
	}
	after := snapshot(t, base)
	for name := range after {
		if name == "out/res" || strings.HasPrefix(name, "out/res/") || name == "out/res2" || strings.HasPrefix(name, "out/res2/") {
			delete(after, name)
		}
	}
	if d := diffSnap(before, after); len(d) > 0 {
		t.Errorf("host changed outside out/res and out/res2: %v", d)
	}
	filepath.WalkDir(out, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		fi, err := os.Lstat(p)
		if err == nil && fi.Mode()&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeDevice|fs.ModeCharDevice) != 0 {
			t.Errorf("%s: mode %v from a forged stream", p, fi.Mode())
		}
		return nil
	})
}

// testBinaryOutput: 64 MiB of /dev/urandom through `boxrun exec … > file`
// has the sha256 the box computes.
func testBinaryOutput(t *testing.T, cli func(string, ...string) cliResult) {
	r := cli("", "exec", "h", "sh", "-c", "head -c 67108864 /dev/urandom > /root/r && sha256sum /root/r")
	if r.code != 0 {
		t.Fatalf("make /root/r: %+v", r)
	}
	want := strings.Fields(r.stdout)[0]
	start := time.Now()
	r = cli("", "exec", "h", "cat", "/root/r")
	if r.code != 0 {
		t.Fatalf("cat: exit %d: %s", r.code, r.stderr)
	}
	sum := sha256.Sum256([]byte(r.stdout))
	if got := hex.EncodeToString(sum[:]); got != want || len(r.stdout) != 64<<20 {
		t.Errorf("exec output: %d bytes sha256 %s, want %d bytes %s", len(r.stdout), got, 64<<20, want)
	}
	t.Logf("64 MiB through boxrun exec in %v", time.Since(start))
}

// testHostileCopyOut copies out of a box whose root planted symlinks that
// lead out (relative and to a host path), setuid files, hard links, FIFOs
// and device nodes: the copy keeps symlinks as symlinks, drops setuid/setgid
// and special files, and a later copy into a planted symlink's name never
// writes through it. Forged archives (entries a real tar never holds) are
// fed through the same extraction code by the tarutil and CLI tests.
func testHostileCopyOut(t *testing.T, cli func(string, ...string) cliResult) {
	base := t.TempDir()
	out := filepath.Join(base, "out")
	victim := filepath.Join(base, "victim")
	writeFile(t, filepath.Join(out, ".bashrc"), "mine\n")
	writeFile(t, filepath.Join(victim, "f"), "host\n")
	before := snapshot(t, base)
	plant := "mkdir -p /root/res && cd /root/res && ln -s .. up && ln -s " + victim + " abs && " +
		"echo x > suid && chmod 6755 suid && echo y > f && ln f hard && mkfifo fifo && (mknod mem c 1 1 || true)"
	if r := cli("", "exec", "h", "sh", "-c", plant); r.code != 0 {
		t.Fatalf("plant: %+v", r)
	}
	steps := []cliCase{
		{name: "copy the tree", args: []string{"cp", "h:/root/res", out + "/"}, wantStdout: []string{"Downloaded to"}},
		{name: "into a planted symlink's name", args: []string{"cp", "h:/root/res/f", filepath.Join(out, "res", "abs")}},
		{name: "into a planted symlink dir", args: []string{"cp", "h:/root/res/f", filepath.Join(out, "res", "up") + "/"},
			wantCode: 1, wantStderr: []string{"symbolic link"}},
		{name: "missing path", args: []string{"cp", "h:/root/missing", filepath.Join(out, "m")},
			wantCode: 1, wantStderr: []string{"FILE_NOT_FOUND", "not found in box"}},
	}
	for _, tc := range steps {
		r := cli("", tc.args...)
		if r.code != tc.wantCode {
			t.Errorf("%s: exit %d, want %d: %s%s", tc.name, r.code, tc.wantCode, r.stdout, r.stderr)
		}
		for _, w := range tc.wantStdout {
			if !strings.Contains(r.stdout, w) {
				t.Errorf("%s: stdout lacks %q: %s", tc.name, w, r.stdout)
			}
		}
		for _, w := range tc.wantStderr {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("%s: stderr lacks %q: %s", tc.name, w, r.stderr)
			}
		}
	}
	after := snapshot(t, base)
	for name := range after {
		if name == "out/res" || strings.HasPrefix(name, "out/res/") {
			delete(after, name)
		}
	}
	if d := diffSnap(before, after); len(d) > 0 {
		t.Errorf("host changed outside out/res: %v", d)
	}
	if l, err := os.Readlink(filepath.Join(out, "res", "up")); err != nil || l != ".." {
		t.Errorf("res/up: %q %v, want the symlink as is", l, err)
	}
	if got := readFile(t, filepath.Join(out, "res", "abs")); got != "y\n" {
		t.Errorf("res/abs = %q, want the copied file in place of the symlink", got)
	}
	if fi, err := os.Lstat(filepath.Join(out, "res", "suid")); err != nil || fi.Mode()&(fs.ModeSetuid|fs.ModeSetgid) != 0 || fi.Mode().Perm() != 0o755 {
		t.Errorf("res/suid: %v %v, want -rwxr-xr-x", fi.Mode(), err)
	}
	for _, n := range []string{"fifo", "mem"} {
		if _, err := os.Lstat(filepath.Join(out, "res", n)); err == nil {
			t.Errorf("res/%s was created on the host", n)
		}
	}
	a, _ := os.Stat(filepath.Join(out, "res", "f"))
	b, _ := os.Stat(filepath.Join(out, "res", "hard"))
	if a == nil || b == nil || !os.SameFile(a, b) {
		t.Error("res/hard is not a hard link of res/f")
	}
}

// snapshot maps every path under dir to its type, mode and content.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return nil
		}
		v := fi.Mode().String()
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			v += " -> " + l
		case fi.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			v += " " + string(b)
		}
		m[rel] = v
		return nil
	})
	return m
}

func diffSnap(a, b map[string]string) []string {
	var d []string
	for k, v := range a {
		if b[k] != v {
			d = append(d, fmt.Sprintf("%s: %q -> %q", k, v, b[k]))
		}
	}
	for k, v := range b {
		if _, ok := a[k]; !ok {
			d = append(d, fmt.Sprintf("%s: new %q", k, v))
		}
	}
	return d
}
