// Command unixdial connects to each Unix socket path in its arguments and
// prints "PATH: connected" or "PATH: ERROR" per line. The hostile tests run
// it inside a box.
//
// unixdial -steal DIR SECONDS instead plays a thief for SECONDS: it
// connects twice to every socket named *.out that appears in DIR, tagging
// the connections as the host would (stdout, stderr), reads what arrives
// on them and at the end prints "stole N sockets, B bytes".
package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	if len(os.Args) == 4 && os.Args[1] == "-steal" {
		steal(os.Args[2], os.Args[3])
		return
	}
	for _, p := range os.Args[1:] {
		c, err := net.Dial("unix", p)
		if err != nil {
			fmt.Printf("%s: %v\n", p, err)
			continue
		}
		c.Close()
		fmt.Printf("%s: connected\n", p)
	}
}

func steal(dir, secs string) {
	n, _ := strconv.Atoi(secs)
	end := time.Now().Add(time.Duration(n) * time.Second)
	seen := map[string]bool{}
	var socks, bytes atomic.Int64
	var wg sync.WaitGroup
	for time.Now().Before(end) {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			name := e.Name()
			if !strings.HasSuffix(name, ".out") || seen[name] {
				continue
			}
			seen[name] = true
			for _, tag := range []byte{'1', '2'} {
				c, err := net.Dial("unix", filepath.Join(dir, name))
				if err != nil {
					continue
				}
				c.Write([]byte{tag})
				socks.Add(1)
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer c.Close()
					c.SetReadDeadline(end)
					b, _ := io.Copy(io.Discard, c)
					bytes.Add(b)
				}()
			}
		}
		time.Sleep(100 * time.Microsecond)
	}
	wg.Wait()
	fmt.Printf("stole %d sockets, %d bytes\n", socks.Load(), bytes.Load())
}
