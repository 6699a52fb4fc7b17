package agentproto_test

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/boxrun/boxrun/agentproto"
)

func TestDataRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	data := strings.Repeat("0123456789", 10000) // spans several frames
	if _, err := (agentproto.DataWriter{W: &buf, Typ: agentproto.FrameData}).Write([]byte(data)); err != nil {
		t.Fatal(err)
	}
	agentproto.WriteFrame(&buf, agentproto.FrameEOF, nil)
	agentproto.WriteJSON(&buf, agentproto.FrameResult, agentproto.Result{Error: "x", Kind: agentproto.KindInvalid})
	got, err := io.ReadAll(&agentproto.DataReader{R: &buf})
	if err != nil || string(got) != data {
		t.Fatalf("DataReader: %d bytes, %v", len(got), err)
	}
	var res agentproto.Result
	if err := agentproto.ReadJSON(&buf, agentproto.FrameResult, &res); err != nil || res.Kind != agentproto.KindInvalid {
		t.Fatalf("ReadJSON: %+v, %v", res, err)
	}
}

func TestReadFrameErrors(t *testing.T) {
	if _, _, err := agentproto.ReadFrame(bytes.NewReader([]byte{1, 0xff, 0xff, 0xff, 0xff})); err != agentproto.ErrFrameTooLarge {
		t.Errorf("oversized frame: %v", err)
	}
	if _, _, err := agentproto.ReadFrame(bytes.NewReader([]byte{1, 0, 0, 0, 9, 'a'})); err == nil {
		t.Error("short frame: no error")
	}
	var buf bytes.Buffer
	agentproto.WriteFrame(&buf, agentproto.FrameStdout, []byte("x"))
	if _, err := io.ReadAll(&agentproto.DataReader{R: &buf}); err == nil {
		t.Error("DataReader accepted a stdout frame")
	}
}

func TestHello(t *testing.T) {
	h := agentproto.Hello("0123456789abcdef")
	if !bytes.HasPrefix(h, agentproto.HelloMagic()) || len(h) != len(agentproto.HelloMagic())+agentproto.NonceLen {
		t.Errorf("Hello = %q", h)
	}
	if h[0] != 0xff {
		t.Error("Hello must start with an invalid yamux version byte")
	}
}
