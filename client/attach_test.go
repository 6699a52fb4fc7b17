package client_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/boxrun/boxrun/boxapi"
)

// TestClient_AttachCancel: canceling ctx ends a remote terminal session at
// once (the server kills the program when the socket closes). Unlike the
// local Manager, which returns the killed program's status, the client
// cannot learn it (the protocol sends no exit frame after a client
// disconnect) and returns ctx's error.
func TestClient_AttachCancel(t *testing.T) {
	c, m := newRemote(t)
	ctx := ctxT(t)
	box, err := m.Create(ctx, boxapi.BoxSpec{Image: "busybox"})
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	time.AfterFunc(300*time.Millisecond, cancel)
	start := time.Now()
	_, err = c.Attach(cctx, box.ID, boxapi.AttachRequest{Cmd: []string{"sleep", "30"}})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Attach after cancel: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Attach took %v after cancel", d)
	}
	// The box is still usable: a new session works.
	code, err := c.Attach(ctx, box.ID, boxapi.AttachRequest{Cmd: []string{"sh", "-c", "exit 9"}})
	if err != nil || code != 9 {
		t.Errorf("second attach = %d, %v", code, err)
	}
}
