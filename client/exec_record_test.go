package client_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/boxapi"
)

// TestClient_ExecRequests checks the requests of one Exec: its start and
// its event stream, the final record taken from the exit event (extension
// ?record=1); against a server without the extension (the parameter is
// dropped on the way), one GET of the record after the stream.
func TestClient_ExecRequests(t *testing.T) {
	for _, ext := range []bool{true, false} {
		t.Run(fmt.Sprintf("extension=%v", ext), func(t *testing.T) {
			var mu sync.Mutex
			var reqs []string
			c := newHandlerClient(t, func(h http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if !ext {
						q := r.URL.Query()
						q.Del("record")
						r.URL.RawQuery = q.Encode()
					}
					mu.Lock()
					reqs = append(reqs, r.Method+" "+r.URL.Path)
					mu.Unlock()
					h.ServeHTTP(w, r)
				})
			})
			ctx := ctxT(t)
			b, err := c.Create(ctx, boxrun.BoxSpec{Image: "busybox"})
			if err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			reqs = nil
			mu.Unlock()
			var out strings.Builder
			e, err := c.Exec(ctx, b.ID, boxrun.ExecRequest{Cmd: []string{"sh", "-c", "echo hi; exit 3"}}, &out, nil)
			if err != nil {
				t.Fatal(err)
			}
			if e.Status != boxapi.ExecFailed || e.ExitCode == nil || *e.ExitCode != 3 || e.FinishedAt.IsZero() || out.String() != "hi\n" {
				t.Fatalf("record %+v, output %q", e, out.String())
			}
			want := []string{"POST /v1/boxes/" + b.ID + "/exec", "GET /v1/boxes/_/exec/" + e.ID + "/events"}
			if !ext {
				want = append(want, "GET /v1/boxes/_/exec/"+e.ID)
			}
			mu.Lock()
			defer mu.Unlock()
			if strings.Join(reqs, "\n") != strings.Join(want, "\n") {
				t.Errorf("requests of one exec:\n%s\nwant:\n%s", strings.Join(reqs, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

// TestExecEvents_Record checks the extension on the wire: with ?record=1 the
// exit event carries the final record under "exec"; without it the exit
// frame is the spec's, with no such key; a bad value is a validation error.
func TestExecEvents_Record(t *testing.T) {
	c, _ := newRemote(t)
	ctx := ctxT(t)
	b, err := c.Create(ctx, boxrun.BoxSpec{Image: "busybox"})
	if err != nil {
		t.Fatal(err)
	}
	e, err := c.Exec(ctx, b.ID, boxrun.ExecRequest{Cmd: []string{"echo", "x"}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	exitData := func(query string) (int, map[string]json.RawMessage) {
		t.Helper()
		res, err := http.Get(c.URL() + "/v1/boxes/" + b.ID + "/exec/" + e.ID + "/events" + query)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		raw, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusOK {
			return res.StatusCode, map[string]json.RawMessage{"body": raw}
		}
		frames := strings.Split(string(raw), "\n\n")
		for _, f := range frames {
			if !strings.Contains(f, "event: exit") {
				continue
			}
			_, data, _ := strings.Cut(f, "data: ")
			var m map[string]json.RawMessage
			if err := json.Unmarshal([]byte(data), &m); err != nil {
				t.Fatalf("exit data %q: %v", data, err)
			}
			return res.StatusCode, m
		}
		t.Fatalf("no exit event in %q", raw)
		return 0, nil
	}
	_, plain := exitData("")
	if _, ok := plain["exec"]; ok || len(plain) != 3 {
		t.Errorf("exit frame without ?record: keys %v, want data, seq, stream only", plain)
	}
	_, with := exitData("?record=1")
	var rec boxapi.Exec
	if err := json.Unmarshal(with["exec"], &rec); err != nil || rec.ID != e.ID || rec.Status != boxapi.ExecSucceeded || rec.ExitCode == nil || *rec.ExitCode != 0 {
		t.Errorf("exit frame with ?record=1: exec %s (%v)", with["exec"], err)
	}
	if string(with["data"]) != string(plain["data"]) || string(with["seq"]) != string(plain["seq"]) {
		t.Errorf("?record=1 changed the exit frame: %v vs %v", with, plain)
	}
	code, body := exitData("?record=maybe")
	if code != http.StatusBadRequest || !strings.Contains(string(body["body"]), "VALIDATION_ERROR") {
		t.Errorf("?record=maybe: %d %s", code, body["body"])
	}
}
