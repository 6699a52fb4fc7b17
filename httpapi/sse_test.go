package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/boxrun/boxrun/httpapi"
)

// sseEvent is one parsed Server-Sent Event.
type sseEvent struct {
	name, id, data string
}

// sseStream is a parsed stream: events in order, keep-alive comments seen,
// whether an "id:" or "retry:" line appeared.
type sseStream struct {
	events   []sseEvent
	comments int
	header   http.Header
}

// readSSE opens path and parses events until the server closes the stream.
func (e *env) readSSE(ctx context.Context, path string, hdr ...string) (*sseStream, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", e.url+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-store")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		b, _ := io.ReadAll(res.Body)
		return nil, fmt.Errorf("status %d: %s", res.StatusCode, b)
	}
	s := &sseStream{header: res.Header}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var cur sseEvent
	fields := 0
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if fields > 0 {
				s.events = append(s.events, cur)
			}
			cur, fields = sseEvent{}, 0
		case strings.HasPrefix(line, ":"):
			s.comments++
		case strings.HasPrefix(line, "event: "):
			cur.name, fields = line[7:], fields+1
		case strings.HasPrefix(line, "id: "):
			cur.id, fields = line[4:], fields+1
		case strings.HasPrefix(line, "data: "):
			if fields > 0 && cur.data != "" {
				return nil, fmt.Errorf("multi-line data: %q", line)
			}
			cur.data, fields = line[6:], fields+1
		default:
			return nil, fmt.Errorf("unexpected line %q", line)
		}
	}
	return s, sc.Err()
}

// execData is the decoded data of an exec event, checked for exact keys.
type execData struct {
	Stream *string
	Data   string
	Seq    int64
}

func decodeExecData(t testing.TB, raw string) execData {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		t.Fatalf("event data %q: %v", raw, err)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	if len(m) != 3 || m["stream"] == nil || m["data"] == nil || m["seq"] == nil {
		t.Fatalf("event data keys = %v, want exactly stream, data, seq", keys)
	}
	var d execData
	if err := json.Unmarshal([]byte(raw), &struct {
		Stream **string `json:"stream"`
		Data   *string  `json:"data"`
		Seq    *int64   `json:"seq"`
	}{&d.Stream, &d.Data, &d.Seq}); err != nil {
		t.Fatal(err)
	}
	return d
}

// checkExecStream checks framing and seq order: log events with seq 0..n-1,
// then one exit event with seq n, and returns stdout, stderr and the exit JSON.
func checkExecStream(t testing.TB, s *sseStream, firstSeq int64) (stdout, stderr, exit string) {
	t.Helper()
	if len(s.events) == 0 {
		t.Fatal("no events")
	}
	for i, ev := range s.events {
		d := decodeExecData(t, ev.data)
		if d.Seq != firstSeq+int64(i) {
			t.Fatalf("event %d has seq %d, want %d (gapless, in order)", i, d.Seq, firstSeq+int64(i))
		}
		last := i == len(s.events)-1
		switch {
		case ev.name == "log" && !last:
			if d.Stream == nil {
				t.Fatalf("log event without stream: %s", ev.data)
			}
			if *d.Stream == "stdout" {
				stdout += d.Data
			} else {
				stderr += d.Data
			}
		case ev.name == "exit" && last:
			if d.Stream != nil {
				t.Fatalf("exit event with stream %q", *d.Stream)
			}
			exit = d.Data
		default:
			t.Fatalf("event %d: %q (last=%v)", i, ev.name, last)
		}
	}
	return stdout, stderr, exit
}

func TestExecEvents_Format(t *testing.T) {
	e := newEnv(t)
	box := e.createBox(`{"image":"busybox"}`)
	ex := e.startExec(box.ID, "sh", "-c", "echo hello; echo oops >&2; exit 3")
	e.waitExec(ex.ID)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := e.readSSE(ctx, "/v1/boxes/"+box.ID+"/exec/"+ex.ID+"/events")
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"} {
		if got := s.header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	stdout, stderr, exit := checkExecStream(t, s, 0)
	if stdout != "hello\n" || stderr != "oops\n" {
		t.Errorf("stdout %q stderr %q", stdout, stderr)
	}
	if exit != `{"exit_code":3}` {
		t.Errorf("exit data = %q", exit)
	}
	for _, ev := range s.events {
		if ev.id != "" {
			t.Errorf("id line %q without resume", ev.id)
		}
	}

	// The exact bytes of a stream (stdout and stderr written apart, so the
	// seq order is deterministic).
	ex2 := e.startExec(box.ID, "sh", "-c", `echo hello; sleep 0.1; printf 'oops "q" <&>\n' >&2; exit 3`)
	e.waitExec(ex2.ID)
	raw := e.do("GET", "/v1/boxes/"+box.ID+"/exec/"+ex2.ID+"/events", "")
	goldenText(t, "sse_exec.txt", raw.body)

	// Any box segment works, and replays are identical.
	s2, err := e.readSSE(ctx, "/v1/boxes/whatever/exec/"+ex.ID+"/events")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(s.events, s2.events) {
		t.Errorf("second replay differs:\n%v\n%v", s.events, s2.events)
	}
}

func TestExecEvents_Live(t *testing.T) {
	e := newEnv(t)
	box := e.createBox(`{"image":"busybox"}`)
	ex := e.startExec(box.ID, "sh", "-c", "for i in 1 2 3 4 5; do echo line$i; sleep 0.05; done")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := e.readSSE(ctx, "/v1/boxes/"+box.ID+"/exec/"+ex.ID+"/events")
	if err != nil {
		t.Fatal(err)
	}
	stdout, _, exit := checkExecStream(t, s, 0)
	if stdout != "line1\nline2\nline3\nline4\nline5\n" || exit != `{"exit_code":0}` {
		t.Errorf("stdout %q exit %q", stdout, exit)
	}
}

// TestExecEvents_RaceFinishDuringSubscribe subscribes to execs that finish
// at about the moment the stream starts: each stream must be complete.
func TestExecEvents_RaceFinishDuringSubscribe(t *testing.T) {
	e := newEnv(t)
	box := e.createBox(`{"image":"busybox"}`)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := range 25 {
		ex := e.startExec(box.ID, "sh", "-c", "echo a; echo b >&2; echo c")
		if i%2 == 1 {
			time.Sleep(time.Duration(i) * time.Millisecond)
		}
		s, err := e.readSSE(ctx, "/v1/boxes/"+box.ID+"/exec/"+ex.ID+"/events")
		if err != nil {
			t.Fatal(err)
		}
		stdout, stderr, exit := checkExecStream(t, s, 0)
		if stdout != "a\nc\n" || stderr != "b\n" || exit != `{"exit_code":0}` {
			t.Fatalf("run %d: stdout %q stderr %q exit %q", i, stdout, stderr, exit)
		}
	}
}

// TestExecEvents_ConcurrentSubscribers: many subscribers joining at
// different moments of a chatty exec all see the same gapless sequence.
func TestExecEvents_ConcurrentSubscribers(t *testing.T) {
	e := newEnv(t)
	box := e.createBox(`{"image":"busybox"}`)
	ex := e.startExec(box.ID, "sh", "-c", "i=0; while [ $i -lt 300 ]; do echo out$i; echo err$i >&2; i=$((i+1)); done")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const n = 30
	streams := make([]*sseStream, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			time.Sleep(time.Duration(i) * 3 * time.Millisecond)
			streams[i], errs[i] = e.readSSE(ctx, "/v1/boxes/"+box.ID+"/exec/"+ex.ID+"/events")
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("subscriber %d: %v", i, errs[i])
		}
		checkExecStream(t, streams[i], 0)
		if !reflect.DeepEqual(streams[i].events, streams[0].events) {
			t.Fatalf("subscriber %d saw a different sequence (%d vs %d events)", i, len(streams[i].events), len(streams[0].events))
		}
	}
	stdout, stderr, _ := checkExecStream(t, streams[0], 0)
	if !strings.HasSuffix(stdout, "out299\n") || !strings.HasSuffix(stderr, "err299\n") {
		t.Errorf("output truncated: ...%q ...%q", stdout[max(0, len(stdout)-20):], stderr[max(0, len(stderr)-20):])
	}
}

func TestExecEvents_Resume(t *testing.T) {
	e := newEnv(t)
	box := e.createBox(`{"image":"busybox"}`)
	ex := e.startExec(box.ID, "sh", "-c", "echo 1; sleep 0.05; echo 2; sleep 0.05; echo 3")
	e.waitExec(ex.ID)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	path := "/v1/boxes/" + box.ID + "/exec/" + ex.ID + "/events"
	full, err := e.readSSE(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	n := len(full.events)
	for _, tc := range []struct {
		name string
		path string
		hdr  []string
	}{
		{"Since", path + "?since=0", nil},
		{"LastEventID", path, []string{"Last-Event-ID", "0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := e.readSSE(ctx, tc.path, tc.hdr...)
			if err != nil {
				t.Fatal(err)
			}
			if len(s.events) != n-1 {
				t.Fatalf("got %d events, want %d", len(s.events), n-1)
			}
			checkExecStream(t, s, 1)
			for i, ev := range s.events {
				if want := fmt.Sprint(i + 1); ev.id != want {
					t.Errorf("event %d id = %q, want %q", i, ev.id, want)
				}
			}
		})
	}
	t.Run("ErrBadSince", func(t *testing.T) {
		if r := e.do("GET", path+"?since=x", ""); r.status != 400 {
			t.Errorf("status %d", r.status)
		}
	})
}

func TestExecEvents_KeepAlive(t *testing.T) {
	e := newEnv(t, httpapi.WithKeepAlive(30*time.Millisecond))
	box := e.createBox(`{"image":"busybox"}`)
	ex := e.startExec(box.ID, "sh", "-c", "sleep 0.4; echo done")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := e.readSSE(ctx, "/v1/boxes/"+box.ID+"/exec/"+ex.ID+"/events")
	if err != nil {
		t.Fatal(err)
	}
	if s.comments < 3 {
		t.Errorf("%d keep-alive comments, want several", s.comments)
	}
	if stdout, _, _ := checkExecStream(t, s, 0); stdout != "done\n" {
		t.Errorf("stdout %q", stdout)
	}
}

// TestExecEvents_CancelEndsStream: canceling an exec ends live streams
// with an exit event whose exit_code is null.
func TestExecEvents_CancelEndsStream(t *testing.T) {
	e := newEnv(t)
	box := e.createBox(`{"image":"busybox"}`)
	ex := e.startExec(box.ID, "sleep", "30")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan *sseStream, 1)
	go func() {
		s, err := e.readSSE(ctx, "/v1/boxes/"+box.ID+"/exec/"+ex.ID+"/events")
		if err != nil {
			t.Error(err)
		}
		done <- s
	}()
	time.Sleep(100 * time.Millisecond)
	if r := e.do("POST", "/v1/boxes/"+box.ID+"/exec/"+ex.ID+":cancel", ""); r.status != 200 {
		t.Fatalf("cancel: %d %s", r.status, r.body)
	}
	s := <-done
	if s == nil {
		return
	}
	_, _, exit := checkExecStream(t, s, 0)
	var info map[string]any
	if err := json.Unmarshal([]byte(exit), &info); err != nil || info["exit_code"] != nil {
		t.Errorf("exit data %q", exit)
	}
}

func TestEventsExtension(t *testing.T) {
	e := newEnv(t)
	box := e.createBox(`{"image":"busybox","name":"ev"}`)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.url+"/v1/events?replay=true&type=box.created&box_id="+box.ID, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	br := bufio.NewReader(res.Body)
	var lines []string
	for len(lines) < 3 {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line = strings.TrimRight(line, "\n"); line != "" && !strings.HasPrefix(line, ":") {
			lines = append(lines, line)
		}
	}
	if lines[0] != "event: box.created" || !strings.HasPrefix(lines[1], "id: ") || !strings.Contains(lines[2], box.ID) {
		t.Errorf("event lines %q", lines)
	}
}
