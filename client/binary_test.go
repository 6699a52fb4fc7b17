package client_test

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/boxrun/boxrun"
)

// TestClient_ExecBinaryOutput checks that exec output reaches the Go client
// byte for byte (the base64 extension of the events stream), binary and
// invalid UTF-8 included, while a client that does not ask for the
// extension still gets the spec's text events.
func TestClient_ExecBinaryOutput(t *testing.T) {
	c, m := newRemote(t)
	ctx := ctxT(t)
	b, err := c.Create(ctx, boxrun.BoxSpec{Image: "busybox"})
	if err != nil {
		t.Fatal(err)
	}
	payload := make([]byte, 1<<20)
	rand.Read(payload)
	payload = append(payload, "end\xe2\x82"...) // ends inside a UTF-8 sequence
	if err := m.UploadFile(ctx, b.ID, "/root/bin.dat", bytes.NewReader(payload)); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	e, err := c.Exec(ctx, b.ID, boxrun.ExecRequest{Cmd: []string{"sh", "-c", "cat bin.dat; cat bin.dat >&2"}}, &stdout, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if e.ExitCode == nil || *e.ExitCode != 0 {
		t.Fatalf("exit %v %s", e.ExitCode, e.ErrorMessage)
	}
	if !bytes.Equal(stdout.Bytes(), payload) || !bytes.Equal(stderr.Bytes(), payload) {
		t.Fatalf("stdout %d bytes, stderr %d bytes, want %d each, byte-exact", stdout.Len(), stderr.Len(), len(payload))
	}

	// An original client (no ?encoding=) reads text events, valid UTF-8.
	res, err := http.Get(c.URL() + "/v1/boxes/" + b.ID + "/exec/" + e.ID + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.Header.Get("X-Boxrun-Encoding") != "" {
		t.Errorf("text stream announces an encoding")
	}
	raw, _ := io.ReadAll(res.Body)
	var text strings.Builder
	for _, line := range strings.Split(string(raw), "\n") {
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			continue
		}
		var d struct {
			Stream *string `json:"stream"`
			Data   string  `json:"data"`
		}
		if err := json.Unmarshal([]byte(data), &d); err != nil {
			t.Fatal(err)
		}
		if d.Stream != nil && *d.Stream == "stdout" {
			text.WriteString(d.Data)
		}
	}
	// Chunks are made valid one by one, so a run of invalid bytes across a
	// chunk boundary gives two U+FFFD: compare with runs collapsed.
	collapse := func(s string) string {
		for strings.Contains(s, "\uFFFD\uFFFD") {
			s = strings.ReplaceAll(s, "\uFFFD\uFFFD", "\uFFFD")
		}
		return s
	}
	got, want := text.String(), strings.ToValidUTF8(string(payload), "\uFFFD")
	if !utf8.ValidString(got) || collapse(got) != collapse(want) {
		t.Errorf("text stream: %d bytes, want %d (the output made valid UTF-8)", len(got), len(want))
	}

	// An unknown encoding is refused.
	res, err = http.Get(c.URL() + "/v1/boxes/" + b.ID + "/exec/" + e.ID + "/events?encoding=hex")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 400 {
		t.Errorf("encoding=hex: %d, want 400", res.StatusCode)
	}
}
