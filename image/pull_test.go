package image_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/image"
	"github.com/boxrun/boxrun/image/imagetest"
	"github.com/boxrun/boxrun/internal/testenv"
	"github.com/boxrun/boxrun/sandbox"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestPull_Busybox(t *testing.T) {
	bb := imagetest.BusyboxImage(t)
	host := imagetest.Registry(t)
	ref := imagetest.Push(t, host, "tools/busybox:1.36", bb)
	s := MustOpen(t)

	var mu sync.Mutex
	var events []boxapi.PullProgress
	img, err := s.Pull(context.Background(), ref, func(p boxapi.PullProgress) {
		mu.Lock()
		events = append(events, p)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := img.Ref, ref; got != want {
		t.Errorf("Ref = %q, want %q", got, want)
	}
	if got, want := img.Digest, digestOf(t, bb); got != want {
		t.Errorf("Digest = %q, want %q", got, want)
	}
	if !filepath.IsAbs(img.Rootfs) {
		t.Errorf("Rootfs %q is not absolute", img.Rootfs)
	}
	if got, want := img.Config.Cmd, []string{"sh"}; !slices.Equal(got, want) {
		t.Errorf("Cmd = %q, want %q", got, want)
	}
	if got, want := img.Config.Env, []string{image.DefaultPath}; !slices.Equal(got, want) {
		t.Errorf("Env = %q, want %q", got, want)
	}
	if target, err := os.Readlink(filepath.Join(img.Rootfs, "bin/sh")); err != nil || target != "/bin/busybox" {
		t.Errorf("bin/sh -> %q, %v; want /bin/busybox", target, err)
	}
	fi, err := os.Stat(filepath.Join(img.Rootfs, "tmp"))
	if err != nil || fi.Mode()&os.ModeSticky == 0 || fi.Mode().Perm() != 0o777 {
		t.Errorf("tmp: %v %v, want drwxrwxrwt", fi.Mode(), err)
	}
	if fi, err := os.Stat(img.Rootfs); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("rootfs mode %v %v, want 0755", fi.Mode(), err)
	}

	// Progress: the one layer ends done and not cached.
	digests := layerDigests(t, bb)
	last := events[len(events)-1]
	if last.Layer != digests[0].String() || last.Done != last.Total || last.Total == 0 || last.Cached || last.Ref != ref {
		t.Errorf("last progress = %+v", last)
	}

	// The rootfs works: run its shell (needs chroot, so root).
	if os.Geteuid() == 0 && runtime.GOOS == "linux" {
		out, err := exec.Command("chroot", img.Rootfs, "/bin/sh", "-c", "echo hello; id -un; ls /etc/passwd").CombinedOutput()
		if err != nil {
			t.Fatalf("chroot sh: %v\n%s", err, out)
		}
		if got, want := string(out), "hello\nroot\n/etc/passwd\n"; got != want {
			t.Errorf("chroot sh said %q, want %q", got, want)
		}
	}
}

func TestPull_StaticBinary(t *testing.T) {
	if _, err := os.Stat(imagetest.BusyboxPath); err != nil {
		testenv.Skip(t, "no static busybox")
	}
	host := imagetest.Registry(t)
	ref := imagetest.Push(t, host, "scratch-bin", imagetest.StaticBinaryImage(t, imagetest.BusyboxPath))
	img := MustPull(t, MustOpen(t), ref)
	if got, want := entries(t, img.Rootfs), []string{"busybox"}; !slices.Equal(got, want) {
		t.Errorf("rootfs holds %q, want %q", got, want)
	}
	if got, want := img.Config.Entrypoint, []string{"/busybox"}; !slices.Equal(got, want) {
		t.Errorf("Entrypoint = %q, want %q", got, want)
	}
	fi, err := os.Stat(filepath.Join(img.Rootfs, "busybox"))
	if err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("busybox: %v %v", fi, err)
	}
}

// TestPull_Layers checks how layers stack: whiteouts, opaque directories,
// type changes, hard links within and across layers, directories a layer
// only implies.
func TestPull_Layers(t *testing.T) {
	l1 := imagetest.Layer(t,
		imagetest.Dir("a/", 0o755),
		imagetest.File("a/keep", 0o644, "keep"),
		imagetest.File("a/gone", 0o644, "gone"),
		imagetest.Dir("b/", 0o755),
		imagetest.File("b/old1", 0o644, "old"),
		imagetest.Dir("b/sub/", 0o755),
		imagetest.File("b/sub/old2", 0o644, "old"),
		imagetest.File("c", 0o644, "c was a file"),
		imagetest.Dir("d/", 0o750),
		imagetest.Dir("lib/", 0o755),
		imagetest.File("lib/target", 0o4755, "target"),
		imagetest.Hardlink("lib/same", "lib/target"),
		imagetest.Symlink("link", "a/keep"),
	)
	l2 := imagetest.Layer(t,
		imagetest.Whiteout("a/gone"),
		imagetest.Opaque("b"),
		imagetest.File("b/new", 0o600, "new"),
		imagetest.Dir("c/", 0o755),
		imagetest.File("c/x", 0o644, "c is a dir"),
		imagetest.File("d/implied", 0o644, "in d"), // no entry for d itself
		imagetest.Hardlink("hl", "lib/target"),     // target in the layer below
		imagetest.Whiteout("link"),
	)
	l3 := imagetest.Layer(t,
		imagetest.File("link", 0o644, "link is a file now"),
	)
	src := imagetest.Image(t, v1.Config{WorkingDir: "/a", User: "1000"}, l1, l2, l3)
	host := imagetest.Registry(t)
	img := MustPull(t, MustOpen(t), imagetest.Push(t, host, "layers", src))
	root := img.Rootfs

	if got, want := entries(t, root), []string{"a", "b", "c", "d", "hl", "lib", "link"}; !slices.Equal(got, want) {
		t.Errorf("root holds %q, want %q", got, want)
	}
	if got, want := entries(t, filepath.Join(root, "a")), []string{"keep"}; !slices.Equal(got, want) {
		t.Errorf("a holds %q, want %q (whiteout)", got, want)
	}
	if got, want := entries(t, filepath.Join(root, "b")), []string{"new"}; !slices.Equal(got, want) {
		t.Errorf("b holds %q, want %q (opaque)", got, want)
	}
	if got := readFile(t, root, "c/x"); got != "c is a dir" {
		t.Errorf("c/x = %q", got)
	}
	if fi, err := os.Stat(filepath.Join(root, "d")); err != nil || fi.Mode().Perm() != 0o750 {
		t.Errorf("d mode = %v %v, want 0750 kept from below", fi.Mode(), err)
	}
	if got := readFile(t, root, "link"); got != "link is a file now" {
		t.Errorf("link = %q", got)
	}
	if fi, err := os.Lstat(filepath.Join(root, "b/new")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("b/new mode = %v %v", fi.Mode(), err)
	}
	target, _ := os.Stat(filepath.Join(root, "lib/target"))
	same, _ := os.Stat(filepath.Join(root, "lib/same"))
	hl, _ := os.Stat(filepath.Join(root, "hl"))
	if target == nil || same == nil || hl == nil || !os.SameFile(target, same) || !os.SameFile(target, hl) {
		t.Errorf("lib/target, lib/same and hl are not one file")
	}
	if target != nil && target.Mode()&os.ModeSetuid == 0 {
		t.Errorf("lib/target lost setuid: %v", target.Mode())
	}
	if got, want := img.Config.WorkingDir, "/a"; got != want {
		t.Errorf("WorkingDir = %q, want %q", got, want)
	}
	if got, want := img.Config.User, "1000"; got != want {
		t.Errorf("User = %q, want %q", got, want)
	}
}

func TestPull_Ownership(t *testing.T) {
	testenv.NeedRoot(t)
	l := imagetest.Layer(t,
		imagetest.Entry{Name: "home/", Type: '5', Mode: 0o755},
		imagetest.Entry{Name: "home/u/", Type: '5', Mode: 0o700, UID: 1000, GID: 1000},
		imagetest.Entry{Name: "home/u/f", Type: '0', Mode: 0o640, UID: 1000, GID: 100, Body: "x"},
	)
	host := imagetest.Registry(t)
	img := MustPull(t, MustOpen(t), imagetest.Push(t, host, "owned", imagetest.Image(t, v1.Config{}, l)))
	for name, want := range map[string][2]uint32{"home/u": {1000, 1000}, "home/u/f": {1000, 100}} {
		fi, err := os.Lstat(filepath.Join(img.Rootfs, name))
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if got := [2]uint32{st.Uid, st.Gid}; got != want {
			t.Errorf("%s owner = %v, want %v", name, got, want)
		}
	}
}

func TestPull_MultiArch(t *testing.T) {
	mk := func(arch string) v1.Image {
		return imagetest.PlatformImage(t, v1.Platform{OS: "linux", Architecture: arch}, v1.Config{},
			imagetest.Layer(t, imagetest.File("arch", 0o644, arch)))
	}
	idx := imagetest.Index(t, map[string]v1.Image{
		"linux/amd64": mk("amd64"), "linux/arm64": mk("arm64"), "linux/s390x": mk("s390x"),
	})
	host := imagetest.Registry(t)
	ref := imagetest.PushIndex(t, host, "multi:latest", idx)

	for _, arch := range []string{"amd64", "arm64"} {
		t.Run(arch, func(t *testing.T) {
			img := MustPull(t, MustOpen(t, image.WithPlatform("linux/"+arch)), ref)
			if got := readFile(t, img.Rootfs, "arch"); got != arch {
				t.Errorf("arch = %q, want %q", got, arch)
			}
			if got, want := img.Digest, digestOf(t, mk(arch)); got != want {
				t.Errorf("Digest = %s, want the %s manifest %s", got, arch, want)
			}
		})
	}
	t.Run("Default", func(t *testing.T) {
		if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
			testenv.Skip(t, "host architecture not in the index")
		}
		img := MustPull(t, MustOpen(t), ref)
		if got := readFile(t, img.Rootfs, "arch"); got != runtime.GOARCH {
			t.Errorf("arch = %q, want the host's %q", got, runtime.GOARCH)
		}
	})
	t.Run("ErrNoPlatform", func(t *testing.T) {
		_, err := MustOpen(t, image.WithPlatform("linux/riscv64")).Pull(context.Background(), ref, nil)
		if !errors.Is(err, boxapi.ErrImagePull) {
			t.Errorf("err = %v, want ErrImagePull", err)
		}
	})
}

func TestPull_SecondPullCached(t *testing.T) {
	c := newCounter()
	host := imagetest.Registry(t, imagetest.WithMiddleware(c.wrap))
	src := imagetest.Image(t, v1.Config{},
		imagetest.Layer(t, imagetest.File("one", 0o644, "1")),
		imagetest.Layer(t, imagetest.File("two", 0o644, "2")))
	ref := imagetest.Push(t, host, "twice", src)
	s := MustOpen(t)
	first := MustPull(t, s, ref)
	if got := c.blobGets(t, src); got != 2 {
		t.Fatalf("first pull: %d layer GETs, want 2", got)
	}
	fi1, err := os.Stat(filepath.Join(first.Rootfs, "one"))
	if err != nil {
		t.Fatal(err)
	}
	c.reset()

	var events []boxapi.PullProgress
	second, err := s.Pull(context.Background(), ref, func(p boxapi.PullProgress) { events = append(events, p) })
	if err != nil {
		t.Fatal(err)
	}
	if got := c.get("GET blob"); got != 0 {
		t.Errorf("second pull: %d blob GETs, want 0", got)
	}
	if got := c.get("GET manifest"); got != 0 {
		t.Errorf("second pull: %d manifest GETs, want 0 (a HEAD is enough)", got)
	}
	if second.Rootfs != first.Rootfs || second.Digest != first.Digest {
		t.Errorf("second pull gave %+v, first %+v", second, first)
	}
	fi2, err := os.Stat(filepath.Join(second.Rootfs, "one"))
	if err != nil || !os.SameFile(fi1, fi2) {
		t.Errorf("rootfs was rebuilt")
	}
	if len(events) != 2 || !events[0].Cached || !events[1].Cached {
		t.Errorf("progress = %+v, want 2 cached layers", events)
	}

	// Another store on the same dir (a new process) also finds it all.
	c.reset()
	third := MustPull(t, MustOpenDir(t, s.Dir()), ref)
	if third.Rootfs != first.Rootfs || c.get("GET blob") != 0 {
		t.Errorf("reopened store: rootfs %s, %d blob GETs", third.Rootfs, c.get("GET blob"))
	}

	// A digest reference to a cached image needs no registry at all.
	c.reset()
	pinned := MustPull(t, s, host+"/twice@"+first.Digest)
	if pinned.Rootfs != first.Rootfs {
		t.Errorf("pinned pull: rootfs %s, want %s", pinned.Rootfs, first.Rootfs)
	}
	if n := c.get("HEAD manifest") + c.get("GET manifest") + c.get("GET blob"); n != 0 {
		t.Errorf("pinned pull of a cached image made %d registry requests", n)
	}
}

func TestPull_TagMoved(t *testing.T) {
	host := imagetest.Registry(t)
	s := MustOpen(t)
	v1img := imagetest.Image(t, v1.Config{}, imagetest.Layer(t, imagetest.File("v", 0o644, "1")))
	v2img := imagetest.Image(t, v1.Config{}, imagetest.Layer(t, imagetest.File("v", 0o644, "2")))
	ref := imagetest.Push(t, host, "moving:latest", v1img)
	if got := readFile(t, MustPull(t, s, ref).Rootfs, "v"); got != "1" {
		t.Fatalf("v = %q", got)
	}
	imagetest.Push(t, host, "moving:latest", v2img)
	if got := readFile(t, MustPull(t, s, ref).Rootfs, "v"); got != "2" {
		t.Errorf("after the tag moved, v = %q, want 2", got)
	}
}

func TestPull_Concurrent(t *testing.T) {
	c := newCounter()
	c.delay = 50 * time.Millisecond
	host := imagetest.Registry(t, imagetest.WithMiddleware(c.wrap))
	base := imagetest.Layer(t, imagetest.File("base", 0o644, "shared"))
	src := imagetest.Image(t, v1.Config{}, base, imagetest.Layer(t, imagetest.File("top", 0o644, "a")))
	other := imagetest.Image(t, v1.Config{}, base, imagetest.Layer(t, imagetest.File("top", 0o644, "b")))
	ref := imagetest.Push(t, host, "same:1", src)
	alias := imagetest.Push(t, host, "same:2", src)     // another name of the same image
	otherRef := imagetest.Push(t, host, "other", other) // shares the base layer
	s := MustOpen(t)

	refs := []string{ref, ref, ref, ref, alias, alias, otherRef, otherRef}
	imgs := make([]*sandbox.Image, len(refs))
	var wg sync.WaitGroup
	for i, r := range refs {
		wg.Go(func() {
			img, err := s.Pull(context.Background(), r, nil)
			if err != nil {
				t.Error(err)
				return
			}
			imgs[i] = img
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for i, d := range layerDigests(t, src) {
		c.mu.Lock()
		n := c.blobs[d.String()]
		c.mu.Unlock()
		if n != 1 {
			t.Errorf("layer %d (%s) fetched %d times, want 1", i, d, n)
		}
	}
	if got := c.blobGets(t, other); got != 2 {
		t.Errorf("other image: %d layer GETs, want 2 (shared base once, top once)", got)
	}
	for i := 1; i < 6; i++ {
		if imgs[i].Rootfs != imgs[0].Rootfs {
			t.Errorf("pull %d got rootfs %s, want the shared %s", i, imgs[i].Rootfs, imgs[0].Rootfs)
		}
	}
	if imgs[4].Ref != alias || imgs[0].Ref != ref {
		t.Errorf("Refs = %q, %q", imgs[0].Ref, imgs[4].Ref)
	}
	if got := readFile(t, imgs[6].Rootfs, "top"); got != "b" {
		t.Errorf("other top = %q", got)
	}
	if got := entries(t, filepath.Join(s.Dir(), "layers/sha256")); len(got) != 3 {
		t.Errorf("%d layers unpacked, want 3", len(got))
	}
}

func TestPull_Offline(t *testing.T) {
	c := newCounter()
	var down atomic.Bool
	host := imagetest.Registry(t, imagetest.WithMiddleware(c.wrap), imagetest.WithMiddleware(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if down.Load() {
				hj, _ := w.(http.Hijacker)
				conn, _, _ := hj.Hijack()
				conn.Close() // as if unreachable
				return
			}
			next.ServeHTTP(w, r)
		})
	}))
	ref := imagetest.Push(t, host, "app", imagetest.Image(t, v1.Config{}, imagetest.Layer(t, imagetest.File("f", 0o644, "x"))))
	dir := t.TempDir()
	first := MustPull(t, MustOpenDir(t, dir), ref)

	t.Run("PullMissing", func(t *testing.T) {
		c.reset()
		img := MustPull(t, MustOpenDir(t, dir, image.WithPullPolicy(image.PullMissing)), ref)
		if img.Rootfs != first.Rootfs || c.get("HEAD manifest")+c.get("GET manifest") != 0 {
			t.Errorf("rootfs %s, %d manifest requests; want cached, none", img.Rootfs, c.get("HEAD manifest")+c.get("GET manifest"))
		}
	})
	t.Run("Unreachable", func(t *testing.T) {
		down.Store(true)
		defer down.Store(false)
		if img := MustPull(t, MustOpenDir(t, dir), ref); img.Rootfs != first.Rootfs {
			t.Errorf("rootfs %s, want the cached %s", img.Rootfs, first.Rootfs)
		}
		other := host + "/never-pulled"
		_, err := MustOpenDir(t, dir).Pull(context.Background(), other, nil)
		wantPullFailed(t, err, other, "")
	})
}

// TestPull_SharedFlight: callers of one pull all get its progress, and one
// giving up does not fail the others or restart the work.
func TestPull_SharedFlight(t *testing.T) {
	c := newCounter()
	c.delay = 300 * time.Millisecond
	host := imagetest.Registry(t, imagetest.WithMiddleware(c.wrap))
	src := imagetest.Image(t, v1.Config{}, imagetest.Layer(t, imagetest.File("f", 0o644, "x")))
	ref := imagetest.Push(t, host, "shared", src)
	s := MustOpen(t)

	var (
		mu     sync.Mutex
		events = map[string]int{}
		wg     sync.WaitGroup
	)
	started := make(chan struct{})
	var once sync.Once
	pull := func(ctx context.Context, who string) error {
		_, err := s.Pull(ctx, ref, func(p boxapi.PullProgress) {
			mu.Lock()
			events[who]++
			mu.Unlock()
			once.Do(func() { close(started) })
		})
		return err
	}
	// The impatient caller gives up once the layer has started (its blob
	// GET takes 300 ms); the patient one joined before.
	impatient, cancel := context.WithCancel(context.Background())
	var errImpatient, errPatient error
	wg.Go(func() { errImpatient = pull(impatient, "impatient") })
	time.Sleep(20 * time.Millisecond)
	wg.Go(func() { errPatient = pull(context.Background(), "patient") })
	<-started
	cancel()
	wg.Wait()

	if boxapi.ErrorCode(errImpatient) != boxapi.CodeCanceled {
		t.Errorf("impatient: %v, want CANCELED", errImpatient)
	}
	if errPatient != nil {
		t.Errorf("patient: %v", errPatient)
	}
	if got := c.blobGets(t, src); got != 1 {
		t.Errorf("layer fetched %d times, want 1", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if events["impatient"] == 0 || events["patient"] == 0 {
		t.Errorf("progress events = %v, want some for both", events)
	}
}
