package httpapi_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/client"
)

// watchRecorder runs a Watch in the background and hands its events over.
type watchRecorder struct {
	evs  chan boxapi.FileEvent
	done chan error
	stop context.CancelFunc
}

func startWatch(t *testing.T, svc boxapi.Service, box, path string, opts boxapi.WatchOptions) *watchRecorder {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &watchRecorder{evs: make(chan boxapi.FileEvent, 100000), done: make(chan error, 1), stop: cancel}
	go func() {
		r.done <- svc.Watch(ctx, box, path, opts, func(ev boxapi.FileEvent) error {
			r.evs <- ev
			return nil
		})
		close(r.evs)
	}()
	t.Cleanup(cancel)
	return r
}

func (r *watchRecorder) next(t *testing.T) boxapi.FileEvent {
	t.Helper()
	select {
	case ev, ok := <-r.evs:
		if !ok {
			t.Fatalf("watch ended: %v", <-r.done)
		}
		return ev
	case <-time.After(60 * time.Second):
		t.Fatal("no watch event within 60s")
	}
	return boxapi.FileEvent{}
}

// change is the part of a FileEvent a test checks.
type change struct {
	Seq     int64
	Type    boxapi.FileEventType
	Path    string
	OldPath string
	Dir     bool
}

func changeOf(ev boxapi.FileEvent) change {
	return change{ev.Seq, ev.Type, ev.Path, ev.OldPath, ev.Dir}
}

// TestWatch_GVisor watches files inside a real gVisor box through the
// whole stack (client → HTTP SSE → Manager → driver → in-box agent):
// create, modify, rename and remove produce exactly the expected events in
// order, a resume continues after a seq, a missing path is FILE_NOT_FOUND,
// a flood of changes is bounded (an overflow event, memory capped), and a
// stop ends the watch.
func TestWatch_GVisor(t *testing.T) {
	s := newGVisorEnvWith(t, nil, boxrun.WithWatchLinger(2*time.Second))
	c, err := client.New(s.url)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	box, err := c.Create(ctx, boxapi.BoxSpec{Image: "busybox", Name: "watched"})
	if err != nil {
		t.Fatal(err)
	}
	sh := func(script string) {
		t.Helper()
		e, err := c.Exec(ctx, box.ID, boxapi.ExecRequest{Cmd: []string{"sh", "-c", script}}, io.Discard, io.Discard)
		if err != nil || e.ExitCode == nil || *e.ExitCode != 0 {
			t.Fatalf("%s: %+v %v", script, e, err)
		}
	}
	sh("mkdir -p /w /flood")

	var watchID string
	var all []change
	t.Run("Changes", func(t *testing.T) {
		r := startWatch(t, c, box.ID, "/w", boxapi.WatchOptions{Recursive: true})
		ready := r.next(t)
		if ready.Type != boxapi.FileWatchReady || ready.WatchID == "" || ready.Seq != 0 || ready.Path != "/w" {
			t.Fatalf("first event %+v, want ready", ready)
		}
		watchID = ready.WatchID
		seq := int64(0)
		step := func(script string, want ...change) {
			t.Helper()
			sh(script)
			for _, w := range want {
				seq++
				w.Seq = seq
				if got := changeOf(r.next(t)); got != w {
					t.Fatalf("after %q: got %+v, want %+v", script, got, w)
				}
				all = append(all, w)
			}
		}
		step("echo hi > /w/a",
			change{Type: boxapi.FileCreated, Path: "/w/a"}, change{Type: boxapi.FileModified, Path: "/w/a"})
		step("mkdir /w/d", change{Type: boxapi.FileCreated, Path: "/w/d", Dir: true})
		step("echo more >> /w/a", change{Type: boxapi.FileModified, Path: "/w/a"})
		step("mv /w/a /w/d/b", change{Type: boxapi.FileRenamed, OldPath: "/w/a", Path: "/w/d/b"})
		step("echo x >> /w/d/b", change{Type: boxapi.FileModified, Path: "/w/d/b"})
		step("mv /w/d/b /w/d/c", change{Type: boxapi.FileRenamed, OldPath: "/w/d/b", Path: "/w/d/c"})
		step("rm /w/d/c", change{Type: boxapi.FileRemoved, Path: "/w/d/c"})
		step("rmdir /w/d", change{Type: boxapi.FileRemoved, Path: "/w/d", Dir: true})
		// Nothing else came: the next event is the marker's.
		step("mkdir /w/end", change{Type: boxapi.FileCreated, Path: "/w/end", Dir: true})
		r.stop()
		if err := <-r.done; !errors.Is(err, context.Canceled) {
			t.Fatalf("watch after cancel: %v", err)
		}
	})

	t.Run("Resume", func(t *testing.T) {
		if watchID == "" {
			t.Skip("no watch")
		}
		// The watch lingers after its reader left; changes made meanwhile
		// are kept.
		sh("echo late > /w/late")
		r := startWatch(t, c, box.ID, "/w", boxapi.WatchOptions{Recursive: true, WatchID: watchID, AfterSeq: 3})
		if ev := r.next(t); ev.Type != boxapi.FileWatchReady || ev.WatchID != watchID {
			t.Fatalf("resume: first event %+v", ev)
		}
		want := append([]change{}, all[3:]...)
		n := int64(len(all))
		want = append(want, change{Seq: n + 1, Type: boxapi.FileCreated, Path: "/w/late"},
			change{Seq: n + 2, Type: boxapi.FileModified, Path: "/w/late"})
		for _, w := range want {
			if got := changeOf(r.next(t)); got != w {
				t.Fatalf("resumed: got %+v, want %+v", got, w)
			}
		}
		r.stop()
		<-r.done

		// Raw SSE with Last-Event-ID: ids are the seqs.
		req, _ := http.NewRequestWithContext(ctx, "GET", s.url+"/v1/boxes/"+box.ID+"/watch?watch_id="+watchID, nil)
		req.Header.Set("Last-Event-ID", fmt.Sprint(n))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		buf := make([]byte, 0, 4096)
		tmp := make([]byte, 4096)
		for !strings.Contains(string(buf), "id: "+fmt.Sprint(n+2)) {
			k, err := resp.Body.Read(tmp)
			buf = append(buf, tmp[:k]...)
			if err != nil {
				t.Fatalf("raw stream: %v: %s", err, buf)
			}
		}
		if !strings.HasPrefix(string(buf), "event: ready\ndata: ") || !strings.Contains(string(buf), "event: created\nid: "+fmt.Sprint(n+1)+"\n") ||
			strings.Contains(string(buf), "id: "+fmt.Sprint(n)+"\n") {
			t.Fatalf("raw stream:\n%s", buf)
		}
	})

	t.Run("Expired", func(t *testing.T) {
		if watchID == "" {
			t.Skip("no watch")
		}
		// Each probe is a reader again, so probes are further apart than
		// the linger.
		deadline := time.Now().Add(60 * time.Second)
		for {
			time.Sleep(4 * time.Second)
			err := c.Watch(ctx, box.ID, "/w", boxapi.WatchOptions{WatchID: watchID}, func(boxapi.FileEvent) error { return io.EOF })
			if boxapi.ErrorCode(err) == boxapi.CodeFileNotFound {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("watch still resumable a minute after its linger: %v", err)
			}
		}
	})

	t.Run("NotFound", func(t *testing.T) {
		err := c.Watch(ctx, box.ID, "/nope", boxapi.WatchOptions{}, func(boxapi.FileEvent) error { return nil })
		if !errors.Is(err, boxapi.ErrNotFound) || boxapi.ErrorCode(err) != boxapi.CodeFileNotFound {
			t.Fatalf("missing path: %v (code %s)", err, boxapi.ErrorCode(err))
		}
		resp, err := http.Get(s.url + "/v1/boxes/" + box.ID + "/watch?path=/nope")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 404 || !strings.Contains(string(body), `"code":"FILE_NOT_FOUND"`) {
			t.Fatalf("raw: %d %s", resp.StatusCode, body)
		}
		for _, q := range []string{"", "?path=rel", "?path=/w&recursive=maybe"} {
			resp, err := http.Get(s.url + "/v1/boxes/" + box.ID + "/watch" + q)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 400 {
				t.Errorf("watch%s: status %d, want 400", q, resp.StatusCode)
			}
		}
	})

	t.Run("Flood", func(t *testing.T) {
		// A reader that does not read while the box makes far more changes
		// than the backlog: the server keeps at most WatchBacklog events,
		// and the reader is told how many it lost.
		const files = 3 * boxapi.WatchBacklog
		gate := make(chan struct{})
		var got, dropped int64
		var last boxapi.FileEvent
		wctx, wcancel := context.WithCancel(ctx)
		defer wcancel()
		done := make(chan error, 1)
		readyc := make(chan struct{})
		go func() {
			done <- s.mgr.Watch(wctx, box.ID, "/flood", boxapi.WatchOptions{}, func(ev boxapi.FileEvent) error {
				if ev.Type == boxapi.FileWatchReady {
					close(readyc)
					<-gate
					return nil
				}
				if ev.Type == boxapi.FileOverflow {
					dropped += ev.Dropped
				} else {
					got++
				}
				last = ev
				if ev.Path == "/flood/done" {
					return io.EOF
				}
				return nil
			})
		}()
		<-readyc
		sh(fmt.Sprintf("i=0; while [ $i -lt %d ]; do echo > /flood/f$i; i=$((i+1)); done; mkdir /flood/done", files))
		time.Sleep(time.Second) // let the agent and the server catch up
		close(gate)
		if err := <-done; err != io.EOF {
			t.Fatalf("flood watch: %v (last %+v)", err, last)
		}
		t.Logf("flood: %d delivered, %d reported lost", got, dropped)
		// Every change is delivered or counted lost (changes still in
		// flight when the reader resumed are delivered too).
		if dropped == 0 || got+dropped > 2*files+1 || got+dropped < 2*files+1-int64(boxapi.WatchBacklog) {
			t.Fatalf("flood: %d delivered + %d lost vs %d changes", got, dropped, 2*files+1)
		}
	})

	t.Run("StopEnds", func(t *testing.T) {
		r := startWatch(t, c, box.ID, "/w", boxapi.WatchOptions{})
		r.next(t)
		if _, err := c.Stop(ctx, box.ID); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-r.done:
			if err != nil {
				t.Fatalf("watch of a stopped box: %v, want nil", err)
			}
		case <-time.After(60 * time.Second):
			t.Fatal("watch still open a minute after stop")
		}
		err := c.Watch(ctx, box.ID, "/w", boxapi.WatchOptions{}, func(boxapi.FileEvent) error { return nil })
		if boxapi.ErrorCode(err) != boxapi.CodeBoxNotRunning {
			t.Fatalf("watch of a stopped box: %v", err)
		}
	})
}
