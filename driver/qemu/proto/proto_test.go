package proto_test

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/boxrun/boxrun/driver/qemu/proto"
)

func TestDataRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	data := strings.Repeat("0123456789", 10000) // spans several frames
	if _, err := (proto.DataWriter{W: &buf, Typ: proto.FrameData}).Write([]byte(data)); err != nil {
		t.Fatal(err)
	}
	proto.WriteFrame(&buf, proto.FrameEOF, nil)
	proto.WriteJSON(&buf, proto.FrameResult, proto.Result{Error: "x", Kind: proto.KindInvalid})
	got, err := io.ReadAll(&proto.DataReader{R: &buf})
	if err != nil || string(got) != data {
		t.Fatalf("DataReader: %d bytes, %v", len(got), err)
	}
	var res proto.Result
	if err := proto.ReadJSON(&buf, proto.FrameResult, &res); err != nil || res.Kind != proto.KindInvalid {
		t.Fatalf("ReadJSON: %+v, %v", res, err)
	}
}

func TestReadFrameErrors(t *testing.T) {
	if _, _, err := proto.ReadFrame(bytes.NewReader([]byte{1, 0xff, 0xff, 0xff, 0xff})); err != proto.ErrFrameTooLarge {
		t.Errorf("oversized frame: %v", err)
	}
	if _, _, err := proto.ReadFrame(bytes.NewReader([]byte{1, 0, 0, 0, 9, 'a'})); err == nil {
		t.Error("short frame: no error")
	}
	var buf bytes.Buffer
	proto.WriteFrame(&buf, proto.FrameStdout, []byte("x"))
	if _, err := io.ReadAll(&proto.DataReader{R: &buf}); err == nil {
		t.Error("DataReader accepted a stdout frame")
	}
}

func TestHello(t *testing.T) {
	h := proto.Hello("0123456789abcdef")
	if !bytes.HasPrefix(h, proto.HelloMagic()) || len(h) != len(proto.HelloMagic())+proto.NonceLen {
		t.Errorf("Hello = %q", h)
	}
	if h[0] != 0xff {
		t.Error("Hello must start with an invalid yamux version byte")
	}
}
