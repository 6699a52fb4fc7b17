package httpapi_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/boxrun/boxrun/httpapi"
	"github.com/boxrun/boxrun/internal/testenv"
)

// part is one multipart part: a field, or the file when file is true.
type part struct {
	name, value string
	file        bool
}

// upload posts a multipart body built from parts.
func (e *env) upload(box string, parts ...part) response {
	e.t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, p := range parts {
		if p.file {
			w, _ := mw.CreateFormFile(p.name, "local.txt")
			io.WriteString(w, p.value)
		} else {
			mw.WriteField(p.name, p.value)
		}
	}
	mw.Close()
	return e.do("POST", "/v1/boxes/"+box+"/files/upload", buf.String(), "Content-Type", mw.FormDataContentType())
}

func (e *env) download(box, path string) response {
	e.t.Helper()
	body, _ := json.Marshal(map[string]string{"path": path})
	return e.do("POST", "/v1/boxes/"+box+"/files/download", string(body))
}

func TestUploadDownload(t *testing.T) {
	e := newEnv(t, httpapi.WithUploadLimit(1000))
	box := e.createBox(`{"image":"busybox","name":"dev"}`)
	e.createBox(`{"image":"busybox","name":"old"}`)
	if r := e.do("POST", "/v1/boxes/old:stop", ""); r.status != 200 {
		t.Fatal(r.status)
	}
	for _, tc := range []struct {
		name       string
		parts      []part
		wantStatus int
		golden     string
		wantMsg    string
		readBack   string // path to download and compare with the file part
	}{
		{"DestFirst", []part{{name: "dest", value: "/root/a.txt"}, {name: "file", value: "hello", file: true}}, 200, "upload.json", "", "/root/a.txt"},
		{"FileFirst", []part{{name: "file", value: "spooled", file: true}, {name: "other", value: "x"}, {name: "dest", value: "/root/a.txt"}}, 200, "upload.json", "", "/root/a.txt"},
		{"PathFallback", []part{{name: "path", value: "/root/sub/dir/b.bin"}, {name: "file", value: "old sdk", file: true}}, 200, "upload_path.json", "", "/root/sub/dir/b.bin"},
		{"ExactlyLimit", []part{{name: "dest", value: "/root/l"}, {name: "file", value: strings.Repeat("x", 1000), file: true}}, 200, "", "", "/root/l"},
		{"EmptyFile", []part{{name: "dest", value: "/root/empty"}, {name: "file", value: "", file: true}}, 200, "", "", "/root/empty"},
		{"ErrTooLarge", []part{{name: "dest", value: "/root/big"}, {name: "file", value: strings.Repeat("x", 1001), file: true}}, 413, "", "Upload larger than the limit", ""},
		{"ErrTooLargeSpooled", []part{{name: "file", value: strings.Repeat("x", 5000), file: true}, {name: "dest", value: "/root/big"}}, 413, "", "Upload larger than the limit", ""},
		{"ErrMissingFile", []part{{name: "dest", value: "/root/x"}}, 400, "err_missing_file.json", "", ""},
		{"ErrMissingBoth", nil, 400, "err_missing_file.json", "", ""},
		{"ErrMissingDest", []part{{name: "file", value: "x", file: true}}, 400, "err_missing_dest.json", "", ""},
		{"ErrNoFileName", []part{{name: "dest", value: "/root/"}, {name: "file", value: "x", file: true}}, 400, "", "Invalid destination path (no filename): /root/", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.upload(box.ID, tc.parts...)
			if r.status != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", r.status, tc.wantStatus, r.body)
			}
			if tc.golden != "" {
				golden(t, tc.golden, r.body)
			}
			if tc.wantMsg != "" && !strings.Contains(string(r.body), tc.wantMsg) {
				t.Errorf("body %s lacks %q", r.body, tc.wantMsg)
			}
			if tc.readBack == "" {
				return
			}
			var want string
			for _, p := range tc.parts {
				if p.file {
					want = p.value
				}
			}
			d := e.download("dev", tc.readBack)
			if d.status != 200 || string(d.body) != want {
				t.Fatalf("download %s: %d %q, want %q", tc.readBack, d.status, d.body, want)
			}
			base := tc.readBack[strings.LastIndexByte(tc.readBack, '/')+1:]
			if got := d.header.Get("Content-Type"); got != "application/octet-stream" {
				t.Errorf("Content-Type %q", got)
			}
			if got, want := d.header.Get("Content-Disposition"), `attachment; filename="`+base+`"`; got != want {
				t.Errorf("Content-Disposition %q, want %q", got, want)
			}
		})
	}
	t.Run("ErrNotMultipart", func(t *testing.T) {
		if r := e.do("POST", "/v1/boxes/dev/files/upload", `{"dest":"/x"}`); r.status != 415 {
			t.Errorf("%d %s", r.status, r.body)
		}
	})
	t.Run("ErrUploadNotRunning", func(t *testing.T) {
		r := e.upload("old", part{name: "dest", value: "/root/x"}, part{name: "file", value: "x", file: true})
		if r.status != 400 || !strings.Contains(string(r.body), `"BOX_NOT_RUNNING"`) {
			t.Errorf("%d %s", r.status, r.body)
		}
	})
	t.Run("ErrUploadNotFound", func(t *testing.T) {
		r := e.upload("nope", part{name: "dest", value: "/root/x"}, part{name: "file", value: "x", file: true})
		if r.status != 404 {
			t.Errorf("%d %s", r.status, r.body)
		}
	})
	for _, tc := range []struct {
		name, box, body string
		wantStatus      int
		golden, wantMsg string
	}{
		{"ErrDownloadMissingFile", "dev", `{"path":"/root/nope"}`, 400, "err_download_missing.json", ""},
		{"ErrDownloadNoPath", "dev", `{}`, 422, "", "missing field `path`"},
		{"ErrDownloadDirectory", "dev", `{"path":"/root"}`, 400, "", "RUNTIME_ERROR"},
		{"ErrDownloadNotRunning", "old", `{"path":"/root/a.txt"}`, 400, "", "BOX_NOT_RUNNING"},
		{"ErrDownloadNotFound", "nope", `{"path":"/root/a.txt"}`, 404, "", "BOX_NOT_FOUND"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do("POST", "/v1/boxes/"+tc.box+"/files/download", tc.body)
			if r.status != tc.wantStatus || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
				t.Fatalf("%d %s %s", r.status, r.header.Get("Content-Type"), r.body)
			}
			if tc.golden != "" {
				golden(t, tc.golden, r.body)
			}
			if !strings.Contains(string(r.body), tc.wantMsg) {
				t.Errorf("body %s lacks %q", r.body, tc.wantMsg)
			}
		})
	}
}

func TestArchiveExtension(t *testing.T) {
	e := newEnv(t)
	box := e.createBox(`{"image":"busybox"}`)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "d/f.txt", Mode: 0o644, Size: 3, Typeflag: tar.TypeReg})
	tw.Write([]byte("abc"))
	tw.Close()
	r := e.do("PUT", "/v1/boxes/"+box.ID+"/archive?path=/root/in", buf.String(), "Content-Type", "application/x-tar")
	if r.status != 200 {
		t.Fatalf("put: %d %s", r.status, r.body)
	}
	golden(t, "ok.json", r.body)
	r = e.do("GET", "/v1/boxes/"+box.ID+"/archive?path=/root/in/d", "")
	if r.status != 200 || r.header.Get("Content-Type") != "application/x-tar" {
		t.Fatalf("get: %d %s", r.status, r.header)
	}
	tr := tar.NewReader(bytes.NewReader(r.body))
	found := false
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		if h.Name == "d/f.txt" {
			data, _ := io.ReadAll(tr)
			found = string(data) == "abc"
		}
	}
	if !found {
		t.Error("d/f.txt not in the archive")
	}
	if r := e.do("GET", "/v1/boxes/"+box.ID+"/archive?path=/root/missing", ""); r.status != 404 && r.status != 400 {
		t.Errorf("missing src: %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/v1/boxes/"+box.ID+"/archive", ""); r.status != 400 {
		t.Errorf("no path: %d %s", r.status, r.body)
	}
}

// randReader yields n pseudo-random bytes, hashing them as it goes.
type randReader struct {
	rng *rand.ChaCha8
	n   int64
	h   hash.Hash
}

func (r *randReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.n {
		p = p[:r.n]
	}
	r.rng.Read(p)
	r.h.Write(p)
	r.n -= int64(len(p))
	return len(p), nil
}

// peakRSS returns VmHWM in bytes; resetPeakRSS resets it (Linux).
func peakRSS(t testing.TB) int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		testenv.Skip(t, "no /proc/self/status")
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	testenv.Skip(t, "no VmHWM")
	return 0
}

func resetPeakRSS() error { return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// TestUploadDownload_1GiB streams 1 GiB in and out of a box through the API
// and checks that the process's peak RSS stays far below the file size.
func TestUploadDownload_1GiB(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	const size = 1 << 30
	e := newEnv(t)
	box := e.createBox(`{"image":"busybox"}`)
	if err := resetPeakRSS(); err != nil {
		testenv.Skip(t, fmt.Sprintf("cannot reset peak RSS: %v", err))
	}
	base := peakRSS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	src := &randReader{rng: rand.NewChaCha8([32]byte{1}), n: size, h: sha256.New()}
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		mw.WriteField("dest", "/root/big.bin")
		w, _ := mw.CreateFormFile("file", "big.bin")
		_, err := io.Copy(w, src)
		if err == nil {
			err = mw.Close()
		}
		pw.CloseWithError(err)
	}()
	req, _ := http.NewRequestWithContext(ctx, "POST", e.url+"/v1/boxes/"+box.ID+"/files/upload", pr)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("upload: %d %s", res.StatusCode, body)
	}

	req, _ = http.NewRequestWithContext(ctx, "POST", e.url+"/v1/boxes/"+box.ID+"/files/download", strings.NewReader(`{"path":"/root/big.bin"}`))
	req.Header.Set("Content-Type", "application/json")
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	h := sha256.New()
	n, err := io.Copy(h, res.Body)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("download: %d, %d bytes, %v", res.StatusCode, n, err)
	}
	if n != size || !bytes.Equal(h.Sum(nil), src.h.Sum(nil)) {
		t.Fatalf("round trip: %d bytes, sha256 mismatch=%v", n, !bytes.Equal(h.Sum(nil), src.h.Sum(nil)))
	}
	grown := peakRSS(t) - base
	t.Logf("1 GiB round trip: peak RSS grew by %d MiB (baseline %d MiB)", grown>>20, base>>20)
	if grown > 128<<20 {
		t.Errorf("peak RSS grew by %d MiB during a 1 GiB round trip; want bounded (< 128 MiB)", grown>>20)
	}
}
