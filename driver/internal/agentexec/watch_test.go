//go:build linux

package agentexec_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/boxrun/boxrun/boxapi"
)

// Watch and List through the real agent: a change under the watched
// directory arrives as a sandbox.FileChange, the listing holds the file,
// and a missing path is ErrNotFound for both.
func TestWatchAndList(t *testing.T) {
	a, broken := realAgent(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	w, err := a.Watch(ctx, dir, true)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	ch, err := w.Next()
	if err != nil {
		t.Fatal(err)
	}
	if ch.Path != filepath.Join(dir, "f") {
		t.Fatalf("change %+v, want one of %s/f", ch, dir)
	}
	ents, _, err := a.List(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name != "f" {
		t.Fatalf("list %s: %+v, want the one file f", dir, ents)
	}
	missing := filepath.Join(dir, "missing")
	if _, err := a.Watch(ctx, missing, false); !errors.Is(err, boxapi.ErrNotFound) {
		t.Fatalf("watch of a missing path: %v, want ErrNotFound", err)
	}
	if _, _, err := a.List(ctx, missing); !errors.Is(err, boxapi.ErrNotFound) {
		t.Fatalf("list of a missing path: %v, want ErrNotFound", err)
	}
	if n := broken.Load(); n != 0 {
		t.Fatalf("the connection was reported broken %d times", n)
	}
}
