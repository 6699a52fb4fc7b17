// Package agentprototest serves forged agents to tests of the host side
// of package agentproto: a fake that answers the handshake correctly and
// then breaks the protocol however the test asks.
package agentprototest

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/boxrun/boxrun/agentproto"
	"github.com/hashicorp/yamux"
)

// Dial returns a connection to a fake agent, closed when tb ends. The fake
// answers the handshake, reads the request of every stream the host opens
// and hands the stream to serve, which may answer anything at all.
func Dial(tb testing.TB, serve func(st *yamux.Stream)) *agentproto.Conn {
	tb.Helper()
	return DialRequests(tb, func(st *yamux.Stream, _ *agentproto.Request) { serve(st) })
}

// DialRequests is Dial whose serve also gets the stream's request.
func DialRequests(tb testing.TB, serve func(st *yamux.Stream, req *agentproto.Request)) *agentproto.Conn {
	tb.Helper()
	host, agent := net.Pipe()
	go fake(agent, serve)
	c, err := agentproto.Handshake(context.Background(), host, 30*time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// fake is the agent side of Dial.
func fake(conn net.Conn, serve func(st *yamux.Stream, req *agentproto.Request)) {
	magic := agentproto.HelloMagic()
	hello := make([]byte, len(magic)+agentproto.NonceLen)
	if _, err := io.ReadFull(conn, hello); err != nil {
		return
	}
	conn.Write(agentproto.Ready(string(hello[len(magic):])))
	sess, err := yamux.Server(conn, agentproto.Config())
	if err != nil {
		return
	}
	for {
		st, err := sess.AcceptStream()
		if err != nil {
			return
		}
		go func() {
			var req agentproto.Request
			if agentproto.ReadJSON(st, agentproto.FrameRequest, &req) != nil {
				return
			}
			serve(st, &req)
		}()
	}
}

// RawFrame returns a frame of type typ whose header claims n payload
// bytes, followed by payload (which need not be n bytes long).
func RawFrame(typ byte, n uint32, payload []byte) []byte {
	b := []byte{typ, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[1:], n)
	return append(b, payload...)
}
