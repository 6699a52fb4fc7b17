package qemu

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/boxrun/boxrun/agentproto"
	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/driver/internal/unixsock"
)

// handshakeTimeout bounds one connection attempt's wait for the agent's
// Ready; dialAgent then dials again (see agentproto.Hello for why).
const handshakeTimeout = 10 * time.Second

// dialAgent connects to the agent of the box in dir (its virtio-serial
// port, which QEMU serves as agent.sock) and runs the agentproto
// handshake, dialing again until ctx ends when the agent does not answer.
// The host side of the protocol is agentproto.Conn, shared with the gVisor
// driver.
func dialAgent(ctx context.Context, dir string) (*agentproto.Conn, error) {
	for {
		c, err := dialAgentOnce(ctx, dir)
		if err == nil || ctx.Err() != nil {
			return c, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func dialAgentOnce(ctx context.Context, dir string) (*agentproto.Conn, error) {
	conn, err := unixsock.Dial(ctx, dir, agentSock)
	if err != nil {
		return nil, err
	}
	return agentproto.Handshake(ctx, conn, handshakeTimeout)
}

// call runs a request whose answer is a single Result, with the agent's
// errors mapped to the boxrun kinds (see agentErr).
func call(ctx context.Context, c *agentproto.Conn, req *agentproto.Request) (agentproto.Result, error) {
	res, err := c.Call(ctx, req)
	return res, agentErr(ctx, req.Op, err)
}

// agentErr maps an error of agentproto.Conn to the boxrun kinds: the
// agent's not-found and invalid reports to ErrNotFound and ErrInvalid, the
// end of ctx to ErrTimeout or ErrCanceled, a broken protocol or a lost
// connection to ErrRuntime. nil stays nil.
func agentErr(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	var re *agentproto.RemoteError
	switch {
	case errors.As(err, &re) && re.Kind == agentproto.KindNotFound:
		return fmt.Errorf("%s: %s: %w", op, re.Msg, boxapi.ErrNotFound)
	case errors.As(err, &re) && re.Kind == agentproto.KindInvalid:
		return fmt.Errorf("%s: %s: %w", op, re.Msg, boxapi.ErrInvalid)
	case errors.As(err, &re):
		return fmt.Errorf("%s: %s: %w", op, re.Msg, boxapi.ErrRuntime)
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("%s: %w: %w", op, boxapi.ErrTimeout, ctx.Err())
	case ctx.Err() != nil:
		return fmt.Errorf("%s: %w: %w", op, boxapi.ErrCanceled, ctx.Err())
	}
	return fmt.Errorf("%s: %w: %w", op, err, boxapi.ErrRuntime)
}

// ctxErr prefers ctx's error, mapped to the boxrun kinds, over err.
func ctxErr(ctx context.Context, err error) error {
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("%w: %w", boxapi.ErrTimeout, ctx.Err())
	case ctx.Err() != nil:
		return fmt.Errorf("%w: %w", boxapi.ErrCanceled, ctx.Err())
	}
	return err
}
