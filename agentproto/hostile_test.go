package agentproto_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/boxrun/boxrun/agentproto"
	"github.com/boxrun/boxrun/agentproto/agentprototest"
	"github.com/hashicorp/yamux"
)

// TestHostileAgent feeds the host forged frame streams: each fails only
// that operation, with an error wrapping ErrProtocol (or a clear remote
// error), and the connection keeps serving other operations.
func TestHostileAgent(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	started := func(st *yamux.Stream) { agentproto.WriteJSON(st, agentproto.FrameResult, agentproto.Result{PID: 7}) }
	for name, tc := range map[string]struct {
		serve func(st *yamux.Stream)
		exec  bool
	}{
		"OversizedFrame": {exec: true, serve: func(st *yamux.Stream) {
			started(st)
			st.Write(agentprototest.RawFrame(agentproto.FrameStdout, agentproto.MaxPayload+1, nil))
		}},
		"UnknownFrameType": {exec: true, serve: func(st *yamux.Stream) {
			started(st)
			agentproto.WriteFrame(st, 99, []byte("?"))
		}},
		"BadExitJSON": {exec: true, serve: func(st *yamux.Stream) {
			started(st)
			agentproto.WriteFrame(st, agentproto.FrameExit, []byte("{not json"))
		}},
		"DataInsteadOfResult": {exec: true, serve: func(st *yamux.Stream) {
			agentproto.WriteFrame(st, agentproto.FrameStdout, []byte("x"))
		}},
		"TruncatedFrame": {exec: true, serve: func(st *yamux.Stream) {
			started(st)
			st.Write(agentprototest.RawFrame(agentproto.FrameStdout, 100, []byte("short")))
			st.Close()
		}},
		"CopyOutUnknownFrame": {serve: func(st *yamux.Stream) {
			agentproto.WriteFrame(st, agentproto.FrameData, []byte("tar?"))
			agentproto.WriteFrame(st, agentproto.FrameStderr, []byte("x"))
		}},
	} {
		t.Run(name, func(t *testing.T) {
			c := agentprototest.Dial(t, tc.serve)
			var err error
			if tc.exec {
				var p *agentproto.Process
				p, err = c.Exec(ctx, &agentproto.Request{Cmd: []string{"x"}}, nil, io.Discard, io.Discard)
				if err == nil {
					_, err = p.Wait()
				}
			} else {
				err = c.CopyOut(ctx, "/x", io.Discard)
			}
			if err == nil {
				t.Fatal("no error")
			}
			if name != "TruncatedFrame" && !errors.Is(err, agentproto.ErrProtocol) {
				t.Fatalf("error %v does not wrap ErrProtocol", err)
			}
			if ctx.Err() != nil {
				t.Fatal("hung until the deadline")
			}
		})
	}
}

// TestHandshakeSilentAgent checks that an agent that never answers costs
// the host the handshake timeout and an ErrProtocol, nothing more.
func TestHandshakeSilentAgent(t *testing.T) {
	host, agent := net.Pipe()
	defer agent.Close()
	go io.Copy(io.Discard, agent)
	start := time.Now()
	_, err := agentproto.Handshake(context.Background(), host, 200*time.Millisecond)
	if !errors.Is(err, agentproto.ErrProtocol) || time.Since(start) > 2*time.Second {
		t.Fatalf("silent agent: %v after %v", err, time.Since(start))
	}
}

// FuzzReadFrame checks that no input makes the decoder panic or allocate
// more than MaxPayload.
func FuzzReadFrame(f *testing.F) {
	f.Add(agentprototest.RawFrame(agentproto.FrameStdout, 3, []byte("abc")))
	f.Add(agentprototest.RawFrame(agentproto.FrameExit, 0xffffffff, nil))
	f.Add([]byte{1, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		for {
			_, payload, err := agentproto.ReadFrame(r)
			if err != nil {
				return
			}
			if len(payload) > agentproto.MaxPayload {
				t.Fatalf("payload of %d bytes", len(payload))
			}
		}
	})
}

// FuzzDataReader checks the tar-stream decoder of copies on arbitrary
// frame streams: it ends with data, EOF or an error, never a panic.
func FuzzDataReader(f *testing.F) {
	var ok bytes.Buffer
	agentproto.WriteFrame(&ok, agentproto.FrameData, []byte("hello"))
	agentproto.WriteFrame(&ok, agentproto.FrameEOF, nil)
	f.Add(ok.Bytes())
	f.Add(agentprototest.RawFrame(agentproto.FrameStderr, 1, []byte("x")))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = io.Copy(io.Discard, &agentproto.DataReader{R: bytes.NewReader(b)})
	})
}
