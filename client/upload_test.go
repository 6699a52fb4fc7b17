package client_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/boxrun/boxrun/boxapi"
)

// countingBody closes started once the server has read `after` bytes.
type countingBody struct {
	io.ReadCloser
	n       int
	after   int
	once    *sync.Once
	started chan struct{}
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	if c.n += n; c.n >= c.after {
		c.once.Do(func() { close(c.started) })
	}
	return n, err
}

// gatedReader yields size bytes, but after gate bytes it waits until the
// server has started receiving: a client that buffered the whole body
// before sending would never get there.
type gatedReader struct {
	sent, gate, size int
	started          <-chan struct{}
}

func (g *gatedReader) Read(p []byte) (int, error) {
	if g.sent >= g.size {
		return 0, io.EOF
	}
	if g.sent >= g.gate {
		select {
		case <-g.started:
		case <-time.After(10 * time.Second):
			return 0, errors.New("server saw no bytes while the client was still reading: upload is buffered")
		}
	}
	n := min(len(p), g.size-g.sent)
	for i := range p[:n] {
		p[i] = byte('a' + (g.sent+i)%26)
	}
	g.sent += n
	return n, nil
}

// TestClient_UploadStreams proves UploadFile streams: the server receives
// the first bytes before the client has read the rest of the source.
func TestClient_UploadStreams(t *testing.T) {
	started := make(chan struct{})
	var once sync.Once
	wrap := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/files/upload") {
				r.Body = &countingBody{ReadCloser: r.Body, after: 256 << 10, once: &once, started: started}
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
	const size = 16 << 20
	if err := c.UploadFile(ctx, box.ID, "/root/big.bin", &gatedReader{gate: 2 << 20, size: size, started: started}); err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, downloadReader(t, c, box.ID, "/root/big.bin"))
	if err != nil || n != size {
		t.Errorf("downloaded %d bytes, %v; want %d", n, err, size)
	}
}

// downloadReader streams a download through a pipe.
func downloadReader(t *testing.T, c interface {
	DownloadFile(ctx context.Context, box, path string, w io.Writer) error
}, box, path string) io.Reader {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(c.DownloadFile(ctxT(t), box, path, pw)) }()
	return pr
}

// failingReader fails after some bytes.
type failingReader struct{ n int }

var errSource = errors.New("disk on fire")

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n > 64<<10 {
		return 0, errSource
	}
	f.n += len(p)
	return len(p), nil
}

// TestClient_SourceError: a failing source is reported as itself, not as an
// unreachable server.
func TestClient_SourceError(t *testing.T) {
	c, m := newRemote(t)
	ctx := ctxT(t)
	box, err := m.Create(ctx, boxapi.BoxSpec{Image: "busybox"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.UploadFile(ctx, box.ID, "/root/x", &failingReader{}); !errors.Is(err, errSource) {
		t.Errorf("UploadFile: %v, want the source's error", err)
	}
	if err := c.CopyIn(ctx, box.ID, "/root", &failingReader{}); !errors.Is(err, errSource) && err == nil {
		t.Errorf("CopyIn: %v", err)
	}
}
