package agentproto_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/boxrun/boxrun/agentproto"
	"github.com/boxrun/boxrun/agentproto/agentprototest"
	"github.com/hashicorp/yamux"
)

// A forged watch stream (agent code is box code) fails the watch with
// ErrProtocol: events outside the watched path, unknown types, malformed
// overflows, wrong frames, oversized events. Well-formed events pass.
func TestWatch_HostileAgent(t *testing.T) {
	long := "/w/" + strings.Repeat("a", agentproto.MaxWatchPath)
	cases := []struct {
		name  string
		typ   byte
		event string
	}{
		{"OutsideRoot", agentproto.FrameEvent, `{"type":"created","path":"/etc/passwd"}`},
		{"DotDot", agentproto.FrameEvent, `{"type":"created","path":"/w/../etc"}`},
		{"Relative", agentproto.FrameEvent, `{"type":"created","path":"w/x"}`},
		{"PrefixSibling", agentproto.FrameEvent, `{"type":"removed","path":"/wx"}`},
		{"NUL", agentproto.FrameEvent, `{"type":"created","path":"/w/a\u0000b"}`},
		{"LongPath", agentproto.FrameEvent, `{"type":"created","path":"` + long + `"}`},
		{"UnknownType", agentproto.FrameEvent, `{"type":"exploded","path":"/w/x"}`},
		{"RenameOldOutside", agentproto.FrameEvent, `{"type":"renamed","path":"/w/x","old_path":"/root/y"}`},
		{"OldPathOnCreate", agentproto.FrameEvent, `{"type":"created","path":"/w/x","old_path":"/w/y"}`},
		{"OverflowWithPath", agentproto.FrameEvent, `{"type":"overflow","path":"/w/x","dropped":3}`},
		{"OverflowZero", agentproto.FrameEvent, `{"type":"overflow"}`},
		{"DroppedOnCreate", agentproto.FrameEvent, `{"type":"created","path":"/w/x","dropped":3}`},
		{"BadJSON", agentproto.FrameEvent, `{"type":`},
		{"WrongFrame", agentproto.FrameStdout, `{"type":"created","path":"/w/x"}`},
		{"Oversized", agentproto.FrameEvent, `{"type":"created","path":"/w/x","pad":"` + strings.Repeat("p", agentproto.MaxWatchEvent) + `"}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := agentprototest.Dial(t, func(st *yamux.Stream) {
				agentproto.WriteJSON(st, agentproto.FrameResult, agentproto.Result{})
				agentproto.WriteFrame(st, agentproto.FrameEvent, []byte(`{"type":"created","path":"/w/ok"}`))
				agentproto.WriteFrame(st, tc.typ, []byte(tc.event))
				io.Copy(io.Discard, st)
			})
			w, err := c.Watch(context.Background(), "/w", true)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			ev, err := w.Next()
			if err != nil || ev.Path != "/w/ok" || ev.Type != agentproto.WatchCreated {
				t.Fatalf("first event %+v, %v", ev, err)
			}
			if ev, err := w.Next(); !errors.Is(err, agentproto.ErrProtocol) {
				t.Fatalf("forged event: got %+v, %v; want ErrProtocol", ev, err)
			}
		})
	}
	t.Run("GoodEvents", func(t *testing.T) {
		c := agentprototest.Dial(t, func(st *yamux.Stream) {
			agentproto.WriteJSON(st, agentproto.FrameResult, agentproto.Result{})
			for _, e := range []string{
				`{"type":"created","path":"/w","dir":true}`,
				`{"type":"renamed","path":"/w/b","old_path":"/w/a"}`,
				`{"type":"overflow","dropped":7}`,
			} {
				agentproto.WriteFrame(st, agentproto.FrameEvent, []byte(e))
			}
			st.Close()
		})
		w, err := c.Watch(context.Background(), "/w/", false)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		for i := 0; i < 3; i++ {
			if ev, err := w.Next(); err != nil {
				t.Fatalf("event %d: %+v %v", i, ev, err)
			}
		}
		if _, err := w.Next(); !errors.Is(err, io.EOF) {
			t.Fatalf("end of watch: %v, want io.EOF", err)
		}
	})
	t.Run("RemoteError", func(t *testing.T) {
		c := agentprototest.Dial(t, func(st *yamux.Stream) {
			agentproto.WriteJSON(st, agentproto.FrameResult, agentproto.Result{Error: "no such file", Kind: agentproto.KindNotFound})
		})
		_, err := c.Watch(context.Background(), "/nope", false)
		var re *agentproto.RemoteError
		if !errors.As(err, &re) || re.Kind != agentproto.KindNotFound {
			t.Fatalf("err %v, want a not_found RemoteError", err)
		}
	})
}
