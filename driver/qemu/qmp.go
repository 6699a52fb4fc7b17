package qemu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/boxrun/boxrun/driver/internal/unixsock"
)

// qmpClient is a minimal QMP client: commands run one at a time and
// asynchronous events are skipped.
type qmpClient struct {
	conn net.Conn
	dec  *json.Decoder
}

// dialQMP connects to the monitor socket in dir and negotiates
// capabilities. The connection obeys ctx's deadline.
func dialQMP(ctx context.Context, dir string) (*qmpClient, error) {
	conn, err := unixsock.Dial(ctx, dir, qmpSock)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	c := &qmpClient{conn: conn, dec: json.NewDecoder(conn)}
	var greeting map[string]any
	if err := c.dec.Decode(&greeting); err != nil {
		conn.Close()
		return nil, fmt.Errorf("qmp greeting: %w", err)
	}
	if _, err := c.execute("qmp_capabilities", nil); err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

func (c *qmpClient) Close() error { return c.conn.Close() }

// execute runs cmd with args (nil for none) and returns its "return" value.
func (c *qmpClient) execute(cmd string, args any) (json.RawMessage, error) {
	req := map[string]any{"execute": cmd}
	if args != nil {
		req["arguments"] = args
	}
	b, _ := json.Marshal(req)
	if _, err := c.conn.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("qmp %s: %w", cmd, err)
	}
	for {
		var msg map[string]json.RawMessage
		if err := c.dec.Decode(&msg); err != nil {
			return nil, fmt.Errorf("qmp %s: %w", cmd, err)
		}
		if e, ok := msg["error"]; ok {
			return nil, fmt.Errorf("qmp %s: %s", cmd, e)
		}
		if r, ok := msg["return"]; ok {
			return r, nil
		}
	}
}

// qmp runs one argument-less QMP command on the box's monitor socket. A
// "quit" that closes the connection before answering succeeded.
func qmp(ctx context.Context, dir, command string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := dialQMP(ctx, dir)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.execute(command, nil); err != nil {
		if command == "quit" && errors.Is(err, io.EOF) {
			return nil
		}
		return err
	}
	return nil
}
