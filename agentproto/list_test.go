package agentproto_test

import (
	"context"
	"errors"
	"testing"

	"github.com/boxrun/boxrun/agentproto"
	"github.com/boxrun/boxrun/agentproto/agentprototest"
	"github.com/hashicorp/yamux"
)

// A hostile agent's list answer with names a directory cannot hold (a
// path, "..", a NUL, a repeat, too many) is a protocol error: the host
// never passes such entries on.
func TestHostile_List(t *testing.T) {
	many := make([]agentproto.DirEntry, agentproto.ListLimit+1)
	for i := range many {
		many[i] = agentproto.DirEntry{Name: "f" + string(rune('a'+i%26)) + string(rune(i)), Type: "file"}
	}
	for name, ents := range map[string][]agentproto.DirEntry{
		"slash":    {{Name: "../../etc/passwd", Type: "file"}},
		"dotdot":   {{Name: "..", Type: "dir"}},
		"dot":      {{Name: ".", Type: "dir"}},
		"empty":    {{Name: "", Type: "file"}},
		"nul":      {{Name: "a\x00b", Type: "file"}},
		"repeated": {{Name: "a", Type: "file"}, {Name: "a", Type: "dir"}},
		"too many": many,
	} {
		c := agentprototest.Dial(t, func(st *yamux.Stream) {
			agentproto.WriteJSON(st, agentproto.FrameResult, agentproto.Result{Entries: ents})
		})
		if got, _, err := c.List(context.Background(), "/x"); !errors.Is(err, agentproto.ErrProtocol) {
			t.Errorf("%s: List = %d entries, %v; want ErrProtocol", name, len(got), err)
		}
	}
	// A made-up type is shown as "other".
	c := agentprototest.Dial(t, func(st *yamux.Stream) {
		agentproto.WriteJSON(st, agentproto.FrameResult, agentproto.Result{Entries: []agentproto.DirEntry{{Name: "x", Type: "<script>", Mode: 0o104755}}})
	})
	ents, _, err := c.List(context.Background(), "/x")
	if err != nil {
		t.Fatal(err)
	}
	if fe := agentproto.FileEntries(ents); fe[0].Type != "other" || fe[0].Mode != "4755" {
		t.Errorf("entry %+v", fe[0])
	}
}
