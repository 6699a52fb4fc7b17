// Command netprobe measures a network path from wherever it runs (the
// host, a gVisor box, a VM), for the network benchmarks: it is built
// static, so the same binary runs on both sides of a comparison.
//
//	netprobe tcp ADDR          read ADDR to EOF; print bytes and seconds
//	netprobe connect ADDR N    N connect+close; print mean seconds per connect
//	netprobe dns SERVER NAME N N A lookups of NAME at SERVER; print mean seconds
//
// Output is one line of JSON: {"bytes":…,"seconds":…}.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"time"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "netprobe:", err)
		os.Exit(1)
	}
}

type result struct {
	Bytes   int64   `json:"bytes,omitempty"`
	Seconds float64 `json:"seconds"`
}

func run(args []string) error {
	if len(args) < 2 {
		return fmt.Errorf("usage: netprobe tcp|connect|dns ARGS")
	}
	var res result
	switch args[0] {
	case "tcp":
		start := time.Now()
		c, err := net.DialTimeout("tcp4", args[1], 10*time.Second)
		if err != nil {
			return err
		}
		n, err := io.Copy(io.Discard, c)
		c.Close()
		if err != nil {
			return err
		}
		res = result{Bytes: n, Seconds: time.Since(start).Seconds()}
	case "connect":
		n, err := count(args, 2)
		if err != nil {
			return err
		}
		start := time.Now()
		for range n {
			c, err := net.DialTimeout("tcp4", args[1], 10*time.Second)
			if err != nil {
				return err
			}
			c.Close()
		}
		res.Seconds = time.Since(start).Seconds() / float64(n)
	case "dns":
		if len(args) < 4 {
			return fmt.Errorf("usage: netprobe dns SERVER NAME N")
		}
		n, err := count(args, 3)
		if err != nil {
			return err
		}
		r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "udp4", args[1])
		}}
		start := time.Now()
		for range n {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err := r.LookupIP(ctx, "ip4", args[2])
			cancel()
			if err != nil {
				return err
			}
		}
		res.Seconds = time.Since(start).Seconds() / float64(n)
	default:
		return fmt.Errorf("unknown mode %q", args[0])
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}

func count(args []string, i int) (int, error) {
	if len(args) <= i {
		return 0, fmt.Errorf("missing count")
	}
	n, err := strconv.Atoi(args[i])
	if err != nil || n < 1 {
		return 0, fmt.Errorf("bad count %q", args[i])
	}
	return n, nil
}
