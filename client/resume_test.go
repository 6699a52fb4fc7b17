package client_test

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/boxrun/boxrun/boxapi"
)

// dropWriter passes an SSE response through until it has carried `after`
// events, then aborts the connection mid-stream.
type dropWriter struct {
	http.ResponseWriter
	after  int
	events int
}

func (d *dropWriter) Write(p []byte) (int, error) {
	n, err := d.ResponseWriter.Write(p)
	d.events += bytes.Count(p, []byte("\n\n"))
	if d.events >= d.after {
		if f, ok := d.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
		panic(http.ErrAbortHandler) // net/http closes the connection
	}
	return n, err
}

func (d *dropWriter) Flush() {
	if f, ok := d.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (d *dropWriter) Unwrap() http.ResponseWriter { return d.ResponseWriter }

// TestClient_ExecResume drops the exec event stream twice mid-way: Exec
// reconnects with ?since= / Last-Event-ID and writes every chunk once.
func TestClient_ExecResume(t *testing.T) {
	var mu sync.Mutex
	var resumes []string // since= of each events request
	drops := 0
	wrap := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !strings.HasSuffix(r.URL.Path, "/events") {
				next.ServeHTTP(w, r)
				return
			}
			mu.Lock()
			resumes = append(resumes, r.URL.Query().Get("since")+"|"+r.Header.Get("Last-Event-ID"))
			drop := drops < 2
			drops++
			mu.Unlock()
			if drop {
				w = &dropWriter{ResponseWriter: w, after: 4}
			}
			next.ServeHTTP(w, r)
		})
	}
	c := newHandlerClient(t, wrap)
	ctx := ctxT(t)
	box, err := c.Create(ctx, boxapi.BoxSpec{Image: "busybox"})
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	e, err := c.Exec(ctx, box.ID, boxapi.ExecRequest{Cmd: []string{"sh", "-c", "for i in $(seq 1 20); do echo line$i; sleep 0.01; done"}}, &out, nil)
	if err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	for i := 1; i <= 20; i++ {
		fmt.Fprintf(&want, "line%d\n", i)
	}
	if out.String() != want.String() {
		t.Errorf("output after reconnects:\n%q\nwant\n%q", out.String(), want.String())
	}
	if exitOf(e) != 0 {
		t.Errorf("exit = %d", exitOf(e))
	}
	mu.Lock()
	defer mu.Unlock()
	if len(resumes) < 3 {
		t.Fatalf("events requests %v, want 3 (two dropped)", resumes)
	}
	if resumes[0] != "|" || resumes[1] == "|" || resumes[2] == resumes[1] {
		t.Errorf("resume positions %v: want none first, then advancing since=/Last-Event-ID", resumes)
	}
	for _, r := range resumes[1:] {
		since, last, _ := strings.Cut(r, "|")
		if since != last {
			t.Errorf("since %q and Last-Event-ID %q differ", since, last)
		}
	}
}
