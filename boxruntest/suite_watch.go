package boxruntest

import (
	"errors"
	"io"
	"testing"
	"time"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/sandbox"
)

// watchLimit bounds the wait for one change of a watch.
const watchLimit = 30 * time.Second

// testWatch checks sandbox.FileWatcher (skipped for drivers without it):
// create, modify, mkdir, rename, remove and rmdir inside a recursively
// watched directory of the box are reported exactly and in order, the
// removal of the watched directory ends the watch with io.EOF, and a
// missing path is ErrNotFound.
func (s *suite) testWatch(t *testing.T) {
	fw, ok := s.d.(sandbox.FileWatcher)
	if !ok {
		t.Skipf("driver %s does not implement sandbox.FileWatcher", s.d.Name())
	}
	ctx := t.Context()
	if _, err := fw.Watch(ctx, s.shared, "/work/no/such/dir", false); !errors.Is(err, boxrun.ErrNotFound) {
		t.Errorf("Watch of a missing path: err = %v, want ErrNotFound", err)
	}
	const root = "/work/watched"
	if r := s.run(t, s.shared, sh("/work", "mkdir -p "+root)); r.code != 0 {
		t.Fatalf("mkdir: %+v", r)
	}
	w, err := fw.Watch(ctx, s.shared, root, true)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	defer w.Close()
	changes := make(chan sandbox.FileChange, 64)
	ended := make(chan error, 1)
	go func() {
		for {
			c, err := w.Next()
			if err != nil {
				ended <- err
				close(changes)
				return
			}
			changes <- c
		}
	}()
	step := func(script string, wants ...sandbox.FileChange) {
		t.Helper()
		if r := s.run(t, s.shared, sh(root, script)); r.code != 0 {
			t.Fatalf("%s: %+v", script, r)
		}
		for _, want := range wants {
			select {
			case got, ok := <-changes:
				if !ok {
					t.Fatalf("after %q: the watch ended (%v), want %+v", script, <-ended, want)
				}
				if got != want {
					t.Fatalf("after %q: got %+v, want %+v", script, got, want)
				}
			case <-time.After(watchLimit):
				t.Fatalf("after %q: no change within %v, want %+v", script, watchLimit, want)
			}
		}
	}
	a, d, b := root+"/a", root+"/d", root+"/d/b"
	step("printf hi > a", sandbox.FileChange{Type: "created", Path: a}, sandbox.FileChange{Type: "modified", Path: a})
	step("mkdir d", sandbox.FileChange{Type: "created", Path: d, Dir: true})
	step("mv a d/b", sandbox.FileChange{Type: "renamed", OldPath: a, Path: b})
	step("printf x >> d/b", sandbox.FileChange{Type: "modified", Path: b})
	step("rm d/b", sandbox.FileChange{Type: "removed", Path: b})
	step("rmdir d", sandbox.FileChange{Type: "removed", Path: d, Dir: true})
	step("cd / && rmdir "+root, sandbox.FileChange{Type: "removed", Path: root, Dir: true})
	select {
	case c, ok := <-changes:
		if ok {
			t.Fatalf("after the watched directory went: %+v, want the end of the watch", c)
		}
		if err := <-ended; !errors.Is(err, io.EOF) {
			t.Errorf("the watch ended with %v, want io.EOF", err)
		}
	case <-time.After(watchLimit):
		t.Fatal("the watch did not end after its directory was removed")
	}
	if err := w.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}
