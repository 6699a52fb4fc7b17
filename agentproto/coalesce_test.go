package agentproto_test

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"testing"

	"github.com/boxrun/boxrun/agentproto"
	"github.com/hashicorp/yamux"
)

// writeLog records every Write that reaches the transport.
type writeLog struct {
	net.Conn
	mu     sync.Mutex
	writes [][]byte
}

func (w *writeLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.writes = append(w.writes, append([]byte(nil), p...))
	w.mu.Unlock()
	return w.Conn.Write(p)
}

// Over a coalesced transport every yamux data frame reaches the transport
// as one write holding its header and its whole body, other frames pass
// as they are, and the bytes arrive intact (a 3 MiB stream and small
// messages both ways).
func TestCoalesce(t *testing.T) {
	a, b := net.Pipe()
	la := &writeLog{Conn: a}
	client, err := yamux.Client(agentproto.Coalesce(la), agentproto.Config())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := yamux.Server(agentproto.Coalesce(b), agentproto.Config())
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()

	big := make([]byte, 3<<20)
	rand.Read(big)
	got := make(chan []byte, 1)
	go func() {
		st, err := server.AcceptStream()
		if err != nil {
			got <- nil
			return
		}
		b, _ := io.ReadAll(st)
		st.Write([]byte("ok"))
		st.Close()
		got <- b
	}()
	st, err := client.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	for _, chunk := range [][]byte{[]byte("hi"), big} {
		if _, err := st.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	st.Close() // half-close: the reply still comes
	if b := <-got; !bytes.Equal(b, append([]byte("hi"), big...)) {
		t.Fatalf("server got %d bytes, want %d intact", len(b), len(big)+2)
	}
	if reply, err := io.ReadAll(st); err != nil || string(reply) != "ok" {
		t.Fatalf("reply %q, %v", reply, err)
	}

	la.mu.Lock()
	defer la.mu.Unlock()
	data := 0
	for i, w := range la.writes {
		if len(w) < 12 {
			t.Fatalf("write %d: %d bytes, not a whole header", i, len(w))
		}
		n := binary.BigEndian.Uint32(w[8:12])
		if w[1] == 0 && n > 0 {
			data++
			if len(w) != 12+int(n) {
				t.Errorf("write %d: data frame of %d bytes written as %d", i, n, len(w)-12)
			}
		} else if len(w) != 12 {
			t.Errorf("write %d: type %d frame with %d extra bytes", i, w[1], len(w)-12)
		}
	}
	if data < 2 {
		t.Errorf("%d data frames seen, want the stream's", data)
	}
}
