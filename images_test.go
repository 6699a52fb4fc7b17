package boxrun_test

import (
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/boxruntest"
	"github.com/boxrun/boxrun/image"
	"github.com/boxrun/boxrun/image/imagetest"
)

// A Manager with an image store pulls from a real registry protocol, applies
// the image config (env, working dir, default command) and reports the
// cache; the fake driver runs the commands on the host.
func TestManager_Images(t *testing.T) {
	host := imagetest.Registry(t)
	img := imagetest.Image(t, v1.Config{
		Env:        []string{"FROM_IMAGE=yes", "PATH=/usr/bin:/bin"},
		WorkingDir: "/srv",
		Entrypoint: []string{"sh", "-c"},
		Cmd:        []string{"echo default $FROM_IMAGE"},
	}, imagetest.Layer(t, imagetest.Dir("srv", 0o755), imagetest.File("srv/hello.txt", 0o644, "hi")))
	ref := imagetest.Push(t, host, "test/config:v1", img)

	dir := t.TempDir()
	store, err := image.Open(filepath.Join(dir, "images"))
	if err != nil {
		t.Fatal(err)
	}
	m := boxruntest.OpenManager(t, dir, boxrun.WithImages(store), boxrun.WithLimits(8, 8192))
	defer m.Close()
	ctx := ctxT(t)

	sub, err := m.Subscribe(ctx, boxrun.EventFilter{Types: []boxrun.EventType{boxrun.EventImagePull}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	info, err := m.PullImage(ctx, ref)
	if err != nil || info.Digest == "" {
		t.Fatalf("pull = %+v, %v", info, err)
	}
	select {
	case ev := <-sub.C():
		if ev.Pull == nil || ev.Pull.Ref != ref {
			t.Errorf("progress event = %+v", ev)
		}
	case <-time.After(5 * time.Second):
		t.Error("no image.pull progress event")
	}

	b := mustCreate(t, m, boxrun.BoxSpec{Image: ref})
	if b.Workdir != "/srv" {
		t.Errorf("workdir = %q, want the image's /srv", b.Workdir)
	}
	res, err := m.Run(ctx, boxrun.RunRequest{Image: ref})
	if err != nil || res.Stdout != "default yes\n" {
		t.Fatalf("run with the image's default command = %+v, %v", res, err)
	}
	list, err := m.Images(ctx)
	if err != nil || len(list) != 1 || list[0].Digest != info.Digest {
		t.Fatalf("images = %+v, %v", list, err)
	}
	// In use by a box: pruning keeps it, even after the ref is removed.
	if err := m.RemoveImage(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if n, err := m.PruneImages(ctx); err != nil || n != 0 {
		t.Fatalf("prune with a box using the image = %d, %v", n, err)
	}
	if err := m.Remove(ctx, b.ID, true); err != nil {
		t.Fatal(err)
	}
	if _, err := m.PruneImages(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = m.Create(ctx, boxrun.BoxSpec{Image: host + "/test/missing:v1"})
	wantCode(t, err, boxrun.CodeImagePullFailed, "")
}
