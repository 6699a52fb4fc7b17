package agentproto

import (
	"encoding/binary"
	"io"
)

// yamux's frame header (github.com/hashicorp/yamux, spec.md): version,
// type, flags (2), stream ID (4), length (4). A data frame is type 0 and
// its length is the size of the body that follows.
const (
	yamuxHeaderLen = 12
	yamuxTypeData  = 0
)

// coalescer joins each yamux data frame's header and body into one Write.
// yamux writes the 12-byte header and then the body as two writes; across
// a sandbox boundary each write is a system call in the Sentry and may wake
// the reader twice. Only a data header with a non-zero length is held (its
// body is the very next write of the session's single writer); every other
// write goes through at once.
type coalescer struct {
	io.ReadWriteCloser
	held []byte // a data header waiting for its body, then the joined frame
}

// Coalesce wraps the transport of a yamux session (either side) so that
// each data frame is written at once. Only yamux may write to the result.
func Coalesce(rwc io.ReadWriteCloser) io.ReadWriteCloser {
	return &coalescer{ReadWriteCloser: rwc}
}

func (c *coalescer) Write(p []byte) (int, error) {
	if len(c.held) == 0 {
		if len(p) == yamuxHeaderLen && p[1] == yamuxTypeData && binary.BigEndian.Uint32(p[8:12]) > 0 {
			c.held = append(c.held[:0], p...)
			return len(p), nil
		}
		return c.ReadWriteCloser.Write(p)
	}
	buf := append(c.held, p...)
	c.held = buf[:0]
	if cap(c.held) > 4*MaxPayload {
		c.held = nil // do not keep a huge buffer
	}
	n, err := c.ReadWriteCloser.Write(buf)
	return max(n-yamuxHeaderLen, 0), err
}
